"""What the node says about a received message it could not use, without leaking badge UIDs.

The daemon handles every received message inside one guard (`NodeDaemon._handle_isolated`):
whatever a message raises, it is logged here and dropped, and the node goes on. The log
line names the topic, the size, and the failure with anything that looks like a badge UID
masked, since a decoder's message may quote the offending value. A malformed payload is
expected and gets no traceback; a failure of the node's own handler gets one at DEBUG only
(it may quote more).
"""

from __future__ import annotations

import logging
import re

# A UID as a reader or a person writes one: 4, 7 or 10 bytes in hex, with or without
# separators. Also catches the first groups of UUIDs (event ids), which is harmless.
_UIDISH = re.compile(r"(?i)(?<![0-9a-f])(?:[0-9a-f]{2}[:\- ]?){3,9}[0-9a-f]{2}(?![0-9a-f])")
_MAX_REASON = 300

# Failures a hostile or broken payload is expected to cause: the message is malformed.
MALFORMED = (ValueError, TypeError, RecursionError, OverflowError, LookupError)


class RelayFault(Exception):
    """Driving the relay failed: never swallowed, the node stops fail-secure."""


def redact(text: str) -> str:
    """`text` with UID-like hex runs replaced by `<uid>`, cut to a readable length."""
    out = _UIDISH.sub("<uid>", text)
    return out if len(out) <= _MAX_REASON else out[:_MAX_REASON] + "…"


def describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose message itself cannot be built
        text = "?"
    return f"{type(exc).__name__}: {redact(text)}"


def log_failed_message(log: logging.Logger, topic: str, payload: bytes, retained: bool,
                       exc: BaseException) -> None:
    """One line at WARNING (a malformed payload) or ERROR (a bug in the node's handler)."""
    what = f"{'retained ' if retained else ''}payload on {topic} ({len(payload)} bytes)"
    if isinstance(exc, MALFORMED):
        log.warning("ignoring malformed %s: %s", what, describe(exc))
    else:
        log.error("ignoring %s: handling it failed (%s); the node goes on", what, describe(exc))
        log.debug("the %s failed with", what, exc_info=exc)
