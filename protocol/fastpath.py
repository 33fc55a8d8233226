"""A compiled fast path for `Event.decode` (issue 21): msgspec validates the usual event in C.

The fast path only ever *accepts*: for an event written the way fabpass nodes write them
(canonical UUIDs, `...123Z` times, known fields well typed) it returns the decoded fields; for
anything else, valid or not, it returns None and the reference decoder in messages.py runs, so
every error message, and every lenient spelling the reference accepts, stays exactly as it was.
Its patterns are the reference's, or stricter, and the fuzz tests check on every input that
whatever it accepts the reference accepts with an equal result.

The per-type structs are built from the reference's field table: a field kind this module does
not know (an addition elsewhere) turns the fast path off for that event type, it never lets an
unchecked field through.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from protocol.wire import MAX_DEPTH, MAX_EVENT_BYTES

_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z"  # the one form format_ts writes
Uuid = Annotated[str, msgspec.Meta(pattern=_UUID)]
Ts = Annotated[str, msgspec.Meta(pattern=_TS)]
Uid = Annotated[str, msgspec.Meta(pattern=r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})\Z")]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}\Z")]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
# msgspec takes integers of any size; bounds must fit an int64 (the reference allows 64 bits)
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class Envelope(msgspec.Struct):
    v: Literal[1]
    id: Uuid
    node: Slug
    boot: Uuid
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    ts: Ts
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    data: msgspec.Raw


_RAW = msgspec.json.Decoder()
_ENVELOPE = msgspec.json.Decoder(Envelope)
# id, node, boot, seq, ts, type, data, and data's JSON text as received (valid, finite, no NUL)
# when it holds no escape
Fields = tuple[str, str, str, int, datetime, str, dict[str, Any], str | None]


class EventFastPath:
    def __init__(self, fields: dict[str, dict[str, str]], choices: dict[str, tuple[str, ...]],
                 rules: Callable[[str, dict[str, Any], str], None]) -> None:
        kinds: dict[str, Any] = {"uid": Uid, "uuid": Uuid, "member": Int64 | None,
                                 "num": Seconds, "ts": Ts}
        kinds.update({kind: Literal[tuple(values)] for kind, values in choices.items()})
        self._rules = rules
        # per type: the struct's decoder, its time fields and its number fields
        self._data: dict[str, tuple[msgspec.json.Decoder[Any], list[str], list[str]]] = {}
        for etype, spec in fields.items():
            if all(kind in kinds for kind in spec.values()):
                struct = msgspec.defstruct(f"Data_{etype.replace('.', '_')}",
                                           [(key, kinds[kind]) for key, kind in spec.items()])
                self._data[etype] = (msgspec.json.Decoder(struct),
                                     [k for k, kind in spec.items() if kind == "ts"],
                                     [k for k, kind in spec.items() if kind == "num"])
        self._known = frozenset(fields)

    def decode(self, payload: object) -> Fields | None:
        """The event's fields, or None: then the reference decoder decides (and explains)."""
        if (type(payload) is not bytes or len(payload) > MAX_EVENT_BYTES
                or payload.count(b"{") + payload.count(b"[") > MAX_DEPTH
                or b"\\u0000" in payload):
            return None
        try:
            env = _ENVELOPE.decode(payload)
            data = _RAW.decode(env.data)
            if type(data) is not dict:
                return None
            if env.type in self._known:
                known = self._data.get(env.type)
                if known is None:
                    return None
                decoder, times, numbers = known
                decoder.decode(env.data)
                for key in times:  # the pattern admits 2026-13-45: the calendar does not
                    datetime.fromisoformat(data[key])
                for key in numbers:  # a float field takes any JSON integer; we take 64 bits
                    if type(data[key]) is int and data[key].bit_length() > 64:
                        return None
            self._rules(env.type, data, f"event {env.type} data")
            ts = datetime.fromisoformat(env.ts)
        except Exception:  # noqa: BLE001 - any doubt goes to the reference decoder
            return None
        text = bytes(env.data)
        # kept as received only without escapes: stored text then says what it means (a UID
        # written as \\u0030… would hide from a text search such as the privacy export's)
        return (env.id, env.node, env.boot, env.seq, ts, env.type, data,
                None if b"\\" in text else text.decode())
