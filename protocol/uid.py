"""Badge UIDs: uppercase hex of the UID bytes, no separators, no checksum byte."""

from __future__ import annotations

import re

from protocol.errors import ProtocolError

UID_HEX_LENGTHS = (8, 14, 20)  # 4-, 7- and 10-byte UIDs
_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})\Z")  # \Z: no trailing newline
_SEPARATORS = re.compile(r"[\s:\-._]")


def is_uid(text: object) -> bool:
    return isinstance(text, str) and bool(_UID.match(text))


def normalize_uid(text: str) -> str:
    """Accept `04:a1:b2:c3`, `04-A1-B2-C3`, `04a1b2c3`…; return `04A1B2C3` or raise ProtocolError."""
    if not isinstance(text, str):
        raise ProtocolError(f"a badge UID must be a string, not {type(text).__name__}")
    uid = _SEPARATORS.sub("", text).upper()
    if not _UID.match(uid):
        raise ProtocolError(
            f"not a badge UID: {text!r} (expected 8, 14 or 20 hex digits: a 4-, 7- or 10-byte UID)"
        )
    return uid


def uid_from_bytes(data: bytes | bytearray | list[int]) -> str:
    return bytes(data).hex().upper()
