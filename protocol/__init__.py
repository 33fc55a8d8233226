"""The v1 wire format shared by nodes and the server (contract section 2)."""

from protocol.errors import ProtocolError
from protocol.messages import (
    BUSY_STATES,
    COMMANDS,
    DENY_REASONS,
    END_REASONS,
    EVENT_TYPES,
    POLICY_KEYS,
    STATES,
    AccessList,
    Ack,
    BadgeEntry,
    Command,
    Event,
    SessionInfo,
    Status,
    check_policy,
    dumps,
    new_id,
)
from protocol.timefmt import format_ts, parse_ts, utcnow
from protocol.topics import TopicParts, Topics, check_slug, is_slug
from protocol.uid import is_uid, normalize_uid, uid_from_bytes

__all__ = [
    "BUSY_STATES", "COMMANDS", "DENY_REASONS", "END_REASONS", "EVENT_TYPES", "POLICY_KEYS", "STATES",
    "AccessList", "Ack", "BadgeEntry", "Command", "Event", "ProtocolError", "SessionInfo",
    "Status", "TopicParts", "Topics", "check_policy", "check_slug", "dumps", "format_ts",
    "is_slug", "is_uid", "new_id", "normalize_uid", "parse_ts", "uid_from_bytes", "utcnow",
]
