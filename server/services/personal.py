"""Finding a member's identity wherever it was copied, and naming people in logs without it.

`IdentityMatcher` is the one matcher export and erasure use (`server.services.privacy`): a
badge UID is found in any spelling a node, a reader or a person may have written it — any case,
with `:`, `-`, `.`, `_` or spaces between the bytes (`04:a1-b2 c3`), inside JSON, raw payload
bytes or free text — but not inside a longer hex string; names, e-mails and member numbers are
found case-insensitively. The same object replaces what it found, so erasure scrubs exactly
what export shows. (Exact SQL filters had missed dead letters holding a UID in lower case or
with separators, and audit details of refused sign-offs keeping the trainer's UID: issue 13.)

`log_ref` is what server logs print instead of a UID or a name: a short keyed hash, stable
within a deployment (keyed by FABPASS_SECRET_KEY, else by a key made at start), so one badge's
lines can be followed without the log holding the badge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

_SEP = r"[\s:\-._]?"
_SEPARATORS = re.compile(r"[\s:\-._]")
_HEX = re.compile(r"[0-9A-F]+")
_LOG_KEY = (os.environ.get("FABPASS_SECRET_KEY") or secrets.token_hex(32)).encode("utf-8")


def canonical_uid(text: str) -> str:
    """`04:a1-b2 c3` → `04A1B2C3` (no validation: for matching only)."""
    return _SEPARATORS.sub("", text).upper()


def log_ref(value: object, kind: str = "uid") -> str:
    """A short keyed hash to log instead of a UID or a name: `uid#5f2c9a01`."""
    text = canonical_uid(value) if kind == "uid" and isinstance(value, str) else str(value)
    digest = hmac.new(_LOG_KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind}#{digest[:8]}"


_H = r"[0-9A-Fa-f]"
_LOGGED_UID = re.compile(
    rf"(?P<uuid>{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}})"  # event ids stay readable
    rf"|(?<![0-9A-Fa-f])(?P<uid>{_H}{{8,20}}"  # a plain run of hex digits
    rf"|{_H}{{2}}(?P<sep>[\s:\-._]){_H}{{2}}(?:(?P=sep){_H}{{2}}){{2,8}})(?![0-9A-Fa-f])")


def redact_uids(text: str) -> str:
    """`text` (a rejection reason, an exception message) with everything that could be a
    badge UID — 8 to 20 hex digits, or 4 to 10 hex bytes with one separator — replaced by its
    `log_ref`, for log lines (issue 13: no UID in server logs), also inside a malformed value
    (`04A1B2C3ZZ`). Over-redacts rather than misses: a long number becomes a `uid#…` too;
    UUIDs (event ids) are kept."""

    def sub(m: re.Match[str]) -> str:
        return m.group("uuid") or log_ref(m.group("uid"))

    return _LOGGED_UID.sub(sub, text)


class IdentityMatcher:
    """Finds and replaces a member's UIDs (any spelling) and identifying texts (any case)."""

    def __init__(self, uids: Iterable[str], texts: Iterable[str | None] = ()) -> None:
        self.uids = sorted({u for u in (canonical_uid(x) for x in uids if x)
                            if _HEX.fullmatch(u) and len(u) % 2 == 0})
        self.texts = sorted({t.strip() for t in texts if t and len(t.strip()) >= 3},
                            key=lambda t: (-len(t), t))
        parts = [_SEP.join(u[i:i + 2] for i in range(0, len(u), 2)) for u in self.uids]
        self._uid_re = (re.compile(rf"(?<![0-9A-Fa-f])(?:{'|'.join(parts)})(?![0-9A-Fa-f])",
                                   re.IGNORECASE) if parts else None)
        self._text_re = (re.compile("|".join(re.escape(t) for t in self.texts), re.IGNORECASE)
                         if self.texts else None)

    def __bool__(self) -> bool:
        return bool(self._uid_re or self._text_re)

    @staticmethod
    def _as_text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8", errors="replace")
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, default=str)

    def search(self, *values: Any) -> bool:
        """Whether any of `values` (text, bytes, JSON-like data) holds a UID or a text."""
        for value in values:
            text = self._as_text(value)
            if (self._uid_re and self._uid_re.search(text)) or (
                    self._text_re and self._text_re.search(text)):
                return True
        return False

    def found_uids(self, value: Any) -> set[str]:
        """The canonical UIDs `value` holds."""
        if self._uid_re is None:
            return set()
        return {canonical_uid(m.group(0)) for m in self._uid_re.finditer(self._as_text(value))}

    def replace(self, value: Any, uid_map: Mapping[str, str], text_as: str) -> Any:
        """Copy of `value` (text, or dicts/lists of them) with each UID replaced by
        `uid_map[canonical]` (or `text_as` when it has none) and each text by `text_as`."""
        if isinstance(value, dict):
            return {k: self.replace(v, uid_map, text_as) for k, v in value.items()}
        if isinstance(value, list):
            return [self.replace(v, uid_map, text_as) for v in value]
        if not isinstance(value, str):
            return value
        out = value
        if self._uid_re is not None:
            def sub(m: re.Match[str]) -> str:
                return uid_map.get(canonical_uid(m.group(0)), text_as)

            out = self._uid_re.sub(sub, out)
        if self._text_re is not None:
            out = self._text_re.sub(text_as, out)
        return out


__all__ = ["IdentityMatcher", "canonical_uid", "log_ref"]
