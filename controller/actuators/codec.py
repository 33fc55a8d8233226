"""Helpers shared by the plug codecs: strict JSON and number decoding."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from controller.actuators.plug import PlugPayloadError

MAX_PAYLOAD = 64 * 1024  # a plug's frames are a few hundred bytes; more is not a plug


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1


def load_json(payload: bytes, what: str) -> Any:
    if len(payload) > MAX_PAYLOAD:
        raise PlugPayloadError(f"{what}: {len(payload)} bytes is too large")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PlugPayloadError(f"{what}: not JSON ({exc})") from exc


def load_object(payload: bytes, what: str) -> dict[str, Any]:
    obj = load_json(payload, what)
    if not isinstance(obj, dict):
        raise PlugPayloadError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def text(payload: bytes, what: str) -> str:
    if len(payload) > 256:
        raise PlugPayloadError(f"{what}: {len(payload)} bytes is too large")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise PlugPayloadError(f"{what}: not UTF-8") from exc


def number(value: Any, what: str) -> float:
    """A finite, non-negative number (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlugPayloadError(f"{what}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise PlugPayloadError(f"{what}: not a finite number")
    return max(value, 0.0)


def boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise PlugPayloadError(f"{what}: expected true or false, got {type(value).__name__}")
    return value
