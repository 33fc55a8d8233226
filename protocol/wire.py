"""Bounded JSON in and out: the one place bytes from the network become Python objects.

Every decoder goes through `load_object`, so whatever arrives, decoding returns a dict or
raises `ProtocolError` and nothing else: no `RecursionError` from a payload nested thousands
deep (issue 13, item 1: it escaped the ingest's per-message handling and stalled every node's
usage recording), no `inf` from `1e400`, no NaN, no lone surrogate that later fails to encode,
no NUL that PostgreSQL refuses. The rules, in the order they are checked:

- size: at most `max_bytes` (a payload over it is refused before it is read);
- nesting: at most `MAX_DEPTH` levels of objects and arrays, checked on the bytes before any
  parser recurses (a cheap count settles ordinary messages: one with fewer brackets than the
  bound cannot be deeper);
- text: UTF-8, no `\\u0000`, no lone surrogate (a `str` payload must encode as UTF-8);
- numbers: finite JSON numbers only: `NaN`, `Infinity` (any spelling) and numbers beyond a
  double (`1e400`) or a 64-bit integer are refused;
- duplicate keys: the last one wins, as in `json` and msgspec (RFC 8259 leaves it open; a
  decoder cannot see duplicates without a slower parser, and every fabpass program reads
  payloads through this same function, so no two readers can disagree about a key).

Parsing itself is msgspec's (C, strict JSON, well kept); the validation of fields stays in
messages.py, so the error messages stay the same whatever parser runs below.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import msgspec

from protocol.errors import ProtocolError

MAX_DEPTH = 32
"""Levels of objects/arrays a payload may nest (a v1 message needs 3; the rest is headroom)."""
MAX_EVENT_BYTES = 64 * 1024
"""An event, a status, an ack or a command (a v1 event is under 1 KiB)."""
MAX_ACK_BYTES = 1024 * 1024
"""An ack: about 25,000 ids (the server acks at most a batch, 500 by default, per node)."""
MAX_ACL_BYTES = 16 * 1024 * 1024
"""An access list: about 150,000 badges at ~100 bytes each."""

_DECODER = msgspec.json.Decoder()
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS_ONLY = bytes(range(256)).translate(None, b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NONFINITE = re.compile(rb"(?i)nan|inf")


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """Depth of `data`'s objects/arrays, or `limit + 1` once it is known to be deeper.

    Works on bytes with C-speed operations only: strings are removed, the brackets kept, then
    innermost `[]` pairs are peeled off `limit` times; anything left is deeper than `limit`.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return min(limit, data.count(b"[") + data.count(b"{"))
    if b'\\"' in data:  # an escaped quote (or backslash): lex the strings properly
        outside = _STRING.sub(b"", data)
    else:  # no escapes before quotes: every other piece between quotes is a string
        outside = b"".join(data.split(b'"')[::2])
    brackets = outside.translate(_SQUARE, _BRACKETS_ONLY)
    for depth in range(limit + 1):
        if not brackets.count(b"["):
            return depth
        peeled = brackets.replace(b"[]", b"")
        if peeled == brackets:  # unbalanced: the parser will say so; never deeper than counted
            return depth
        brackets = peeled
    return limit + 1


def _as_bytes(payload: object, what: str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError(f"{what}: payload holds a lone surrogate (not UTF-8)") from None
    raise ProtocolError(f"{what}: payload must be bytes, text or an object, "
                        f"not {type(payload).__name__}")


def load_object(payload: object, what: str, *, max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """`payload` (bytes, text or an already-parsed dict) as a JSON object, within the bounds."""
    if isinstance(payload, dict):
        check_tree(payload, what)
        return payload
    data = _as_bytes(payload, what)
    if len(data) > max_bytes:
        raise ProtocolError(f"{what}: payload is {len(data)} bytes, over the limit of {max_bytes}")
    if nesting_depth(data) > MAX_DEPTH:
        raise ProtocolError(f"{what}: payload nests objects/arrays deeper than {MAX_DEPTH} levels")
    if b"\\u0000" in data and _NUL.search(data):
        raise ProtocolError(f"{what}: payload holds a NUL character (\\u0000)")
    try:
        obj = _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError, MemoryError) as exc:
        raise ProtocolError(f"{what}: payload is not UTF-8 JSON ({_explain(data, exc)})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: payload must be a JSON object, not {type(obj).__name__}")
    return obj


def _explain(data: bytes, exc: BaseException) -> str:
    """msgspec's reason, plus what it does not name (its messages are terse for these)."""
    if isinstance(exc, msgspec.ValidationError):
        return f"a number out of range: {exc}"
    if _NONFINITE.search(_STRING.sub(b"", data)):
        return f"{exc}; NaN and Infinity are not JSON numbers"
    if _SURROGATE.search(data):
        return f"{exc}; a lone surrogate is not a character"
    return str(exc)


def check_tree(obj: Any, what: str) -> None:
    """The same bounds for an object built in Python (a node's stored event): depth, finite
    numbers, text without NUL or lone surrogates, string keys. Errors name the field's path."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        where = f"{what}: field {path!r}" if path else what
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise ProtocolError(f"{where} nests objects/arrays deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                for key in node:
                    if not isinstance(key, str):
                        raise ProtocolError(f"{where}: object keys must be strings, not {key!r}")
                    _check_text(key, where)
                stack.extend((v, depth + 1, f"{path}.{k}" if path else k) for k, v in node.items())
            else:
                stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, where)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ProtocolError(f"{where} holds a non-finite number ({node!r})")
        elif isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > 64:
            raise ProtocolError(f"{where} holds an integer out of range")
        elif not (node is None or isinstance(node, bool | int | float)):
            raise ProtocolError(f"{where} holds a {type(node).__name__}, not a JSON value")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise ProtocolError(f"{what}: holds a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{what}: holds a lone surrogate (not UTF-8)") from None


def dumps(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; refuses what `load_object` would refuse to read back."""
    check_tree(obj, "encode")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_COLON = re.compile(rb"\s*:\s*")


def peek_id(payload: object) -> str | None:
    """The top-level `id` of a payload that failed to decode, if it is a UUID; never raises.

    The server acks a rejected event by this id so that the node stops resending it. Only the
    top level counts (an `id` inside `data` is not the event's); a payload over the event size
    bound gives None. Nesting is walked on the bytes, never by a recursive parser, so a
    payload nested a million deep still yields its id.
    """
    try:
        data = _as_bytes(payload, "peek") if not isinstance(payload, dict) else None
        if data is None:
            value = payload.get("id") if isinstance(payload, dict) else None
        elif len(data) > MAX_EVENT_BYTES:
            return None
        else:
            value = _top_level_id(data)
        if not isinstance(value, str) or len(value) != 36:
            return None
        return str(uuid.UUID(value)) if str(uuid.UUID(value)) == value.lower() else None
    except Exception:  # noqa: BLE001 - the contract of this helper is "never raises"
        return None


def _top_level_id(data: bytes) -> object:
    depth, found, pos = 0, None, 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and match.start() >= pos:
            colon = _COLON.match(data, match.end())
            if colon is None or json.loads(token) != "id":
                continue
            value = _TOKEN.match(data, colon.end())
            if value is not None and value.group().startswith(b'"'):
                found = json.loads(value.group())
                pos = value.end()  # the value is a string: never a key
    return found
