"""The v1 wire format shared by nodes and the server (contract section 2)."""

from protocol.acl import BOOKING_MODES, POLICY_KEYS, AccessList, BadgeEntry, Booking, check_policy
from protocol.errors import ProtocolError
from protocol.messages import (
    BUSY_STATES,
    COMMANDS,
    DENY_REASONS,
    END_REASONS,
    EVENT_TYPES,
    STATES,
    Ack,
    Command,
    Event,
    SessionInfo,
    Status,
    dumps,
    new_id,
    peek_id,
)
from protocol.timefmt import format_ts, parse_ts, utcnow
from protocol.topics import TopicParts, Topics, check_slug, is_slug
from protocol.uid import is_uid, normalize_uid, uid_from_bytes
from protocol.wire import MAX_ACK_BYTES, MAX_ACL_BYTES, MAX_DEPTH, MAX_EVENT_BYTES, load_object

__all__ = [
    "BOOKING_MODES", "Booking", "MAX_ACK_BYTES", "MAX_ACL_BYTES", "MAX_DEPTH", "MAX_EVENT_BYTES", "load_object",
    "peek_id",
    "BUSY_STATES", "COMMANDS", "DENY_REASONS", "END_REASONS", "EVENT_TYPES", "POLICY_KEYS", "STATES",
    "AccessList", "Ack", "BadgeEntry", "Command", "Event", "ProtocolError", "SessionInfo",
    "Status", "TopicParts", "Topics", "check_policy", "check_slug", "dumps", "format_ts",
    "is_slug", "is_uid", "new_id", "normalize_uid", "parse_ts", "uid_from_bytes", "utcnow",
]
