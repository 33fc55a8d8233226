"""RFC 3339 UTC timestamps with millisecond precision and a `Z` (contract section 2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from protocol.errors import ProtocolError

_TS = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def format_ts(when: datetime) -> str:
    """`2026-11-22T19:20:50.123Z`; a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    # Not strftime: its %Y writes year 1 as "1", which no RFC 3339 reader takes back.
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:"
            f"{when.minute:02d}:{when.second:02d}.{when.microsecond // 1000:03d}Z")


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 time into an aware UTC datetime, or raise ProtocolError."""
    if not isinstance(text, str) or not _TS.match(text):
        raise ProtocolError(f"not an RFC 3339 time: {text[:40] if isinstance(text, str) else text!r}")
    if len(text) == 24 and text[10] == "T" and text[23] == "Z":  # the form fabpass writes
        try:
            return datetime.fromisoformat(text)  # 3.11 reads `Z` as UTC
        except ValueError as exc:
            raise ProtocolError(f"not an RFC 3339 time: {text!r} ({exc})") from None
    norm = text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T").replace(" ", "T")
    # Python < 3.11 cannot parse more than 6 fraction digits; cut them.
    m = re.match(r"^(.*\.\d{6})\d+(.*)$", norm)
    if m:
        norm = m.group(1) + m.group(2)
    try:
        return datetime.fromisoformat(norm).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        # ValueError: no such day/hour, a leap second (23:59:60), an offset of 24 h or more;
        # OverflowError: year 1 or 9999 pushed past the calendar by its offset.
        raise ProtocolError(f"not an RFC 3339 time: {text!r} ({exc})") from None


def utcnow() -> datetime:
    return datetime.now(UTC)
