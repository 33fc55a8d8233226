"""USB "keyboard wedge" badge readers (they type the UID and press Enter) via evdev.

Such a reader shows up as a keyboard. We grab it (`EVIOCGRAB`) so its typing
goes only to us and not into a console or a desktop session, read its key
events on a background thread, and parse them with `KeyboardUidParser`.

Wedges differ in what they type for the same card: hex in reading order, hex
byte-reversed, or a decimal number of the UID read MSB- or LSB-first (the
common cheap 125 kHz/13.56 MHz readers type 10 decimal digits of a 4-byte
UID read LSB-first: `decimal_reversed`). The `format` option converts all of
them back to the UID bytes in card order, so a badge has the same UID on a
wedge as on an MFRC522.

A wedge types once per tap and says nothing while the card stays or when it
leaves, so `poll()` reports a typed UID for `hold_s` (default 0.5 s) and then
None: placed/removed events still work (tap mode; present mode cannot work
with a wedge). `evdev` is imported only when a device is opened.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from badge_reader.base import BadgeReaderError
from badge_reader.errors import InvalidUidError, ReaderBusError, ReaderUnavailableError
from protocol.errors import ProtocolError
from protocol.uid import normalize_uid, uid_from_bytes

log = logging.getLogger(__name__)

KeyboardFormat = Literal["hex", "hex_reversed", "decimal", "decimal_reversed"]
FORMATS: tuple[str, ...] = ("hex", "hex_reversed", "decimal", "decimal_reversed")

EV_KEY = 1
KEY_DOWN = 1
# Linux input keycodes (linux/input-event-codes.h): top-row and keypad digits, A-F, Enter.
_KEYS: dict[int, str] = {
    2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0",
    79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7", 72: "8", 73: "9", 82: "0",
    30: "A", 48: "B", 46: "C", 32: "D", 18: "E", 33: "F",
}  # fmt: skip
_ENTER = (28, 96)  # KEY_ENTER, KEY_KPENTER
_MAX_TYPED = 40  # longer than any UID in any format: a stuck or wrong device


class KeyboardUidParser:
    """Turn key events into UIDs: digits and A-F are collected, Enter ends a UID.

    Only key-down events count (auto-repeat and key-up are ignored); Shift
    and every other key are ignored, so `04a1` and `04A1` read the same.
    `feed` returns the UID (uppercase hex in card byte order) on Enter, or
    None; a malformed line is logged, kept in `last_error`, and dropped.
    """

    def __init__(self, format: KeyboardFormat = "hex", uid_bytes: int = 4) -> None:
        if format not in FORMATS:
            raise InvalidUidError(
                f"unknown keyboard format {format!r} (expected {', '.join(FORMATS)})"
            )
        if uid_bytes not in (4, 7, 10):
            raise InvalidUidError(f"uid_bytes must be 4, 7 or 10, not {uid_bytes!r}")
        self.format = format
        self.uid_bytes = uid_bytes
        self.last_error: str | None = None
        self._typed: list[str] = []

    def feed(self, keycode: int, value: int) -> str | None:
        text = self.feed_line(keycode, value)
        if not text:
            return None
        try:
            uid = self.convert(text)
        except InvalidUidError as exc:
            self.last_error = str(exc)
            log.warning("keyboard reader: %s", exc)
            return None
        self.last_error = None
        return uid

    def feed_line(self, keycode: int, value: int) -> str | None:
        """Collect one key event; on Enter return the raw typed line (may be empty)."""
        if value != KEY_DOWN:
            return None
        if keycode in _ENTER:
            text = "".join(self._typed)
            self._typed.clear()
            return text
        char = _KEYS.get(keycode)
        if char is not None:
            if len(self._typed) >= _MAX_TYPED:
                log.warning("keyboard reader: more than %d keys without Enter, dropped", _MAX_TYPED)
                self._typed.clear()
            self._typed.append(char)
        return None

    def feed_all(self, events: Iterable[tuple[int, int]]) -> list[str]:
        """Feed (keycode, value) pairs; return the UIDs completed on the way."""
        return [uid for code, value in events if (uid := self.feed(code, value)) is not None]

    def convert(self, text: str) -> str:
        """Convert one typed line in this parser's format to a UID (raises InvalidUidError)."""
        if self.format in ("hex", "hex_reversed"):
            try:
                uid = normalize_uid(text)
            except ProtocolError as exc:
                raise InvalidUidError(f"typed {text!r} ({self.format}): {exc}") from None
            if self.format == "hex_reversed":
                uid = uid_from_bytes(bytes.fromhex(uid)[::-1])
            return uid
        if not text.isdigit():
            raise InvalidUidError(f"typed {text!r} is not a decimal number ({self.format})")
        number = int(text)
        if number >= 256**self.uid_bytes:
            raise InvalidUidError(
                f"typed {text} does not fit in {self.uid_bytes} bytes ({self.format})"
            )
        order: Literal["big", "little"] = "big" if self.format == "decimal" else "little"
        return uid_from_bytes(number.to_bytes(self.uid_bytes, order))


def explain(text: str, uid_bytes: int = 4) -> dict[str, str]:
    """What a typed line means in each format: format -> UID, or `-` with the reason.

    For finding a wedge's format: tap a card whose UID is known and see which
    line shows it.
    """
    out = {}
    for fmt in FORMATS:
        try:
            out[fmt] = KeyboardUidParser(fmt, uid_bytes).convert(text)  # type: ignore[arg-type]
        except InvalidUidError as exc:
            out[fmt] = f"- ({exc})"
    return out


def _import_evdev() -> Any:
    try:
        import evdev  # type: ignore[import-not-found]
    except ImportError:
        raise ReaderUnavailableError(
            "the keyboard reader needs the 'evdev' module: pip install 'fabpass[pi]' "
            "(or apt install python3-evdev)"
        ) from None
    return evdev


def open_input_device(device: str) -> Any:
    """Open an evdev device by path (`/dev/input/...`) or by a substring of its name."""
    evdev = _import_evdev()
    if device.startswith("/"):
        try:
            return evdev.InputDevice(device)
        except FileNotFoundError:
            raise ReaderUnavailableError(
                f"input device {device} does not exist (unplugged?)"
            ) from None
        except PermissionError:
            raise ReaderUnavailableError(
                f"no permission to read {device}: add the user to the 'input' group"
            ) from None
    names = []
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError:
            continue
        if device.lower() in dev.name.lower():
            log.info("keyboard reader: %r is %s", dev.name, path)
            return dev
        names.append(dev.name)
        dev.close()
    raise ReaderUnavailableError(
        f"no input device named like {device!r}; found: {', '.join(names) or 'none readable'} "
        "(is the user in the 'input' group?)"
    )


class KeyboardReader:
    """A keyboard-wedge reader: a background thread types UIDs in, `poll` never blocks.

    `device` is a path or name substring (see `open_input_device`);
    `input_device` injects an already opened object with `read_loop()` (or
    `fd` + `read()`), e.g. a fake in tests. With a path or name, a lost
    device (unplugged) is reopened every `reopen_s` seconds.
    """

    def __init__(
        self,
        device: str | None = None,
        *,
        format: KeyboardFormat = "hex",
        uid_bytes: int = 4,
        grab: bool = True,
        hold_s: float = 0.5,
        reopen_s: float = 2.0,
        input_device: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if device is None and input_device is None:
            raise ReaderUnavailableError("a keyboard reader needs a device path or name")
        self.parser = KeyboardUidParser(format, uid_bytes)
        self.device = device
        self.grab = grab
        self.hold_s = hold_s
        self.reopen_s = reopen_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._uid: str | None = None
        self._until = 0.0
        self._seen = False
        self._error: BadgeReaderError | None = None
        self._reopen = input_device is None
        self._dev = input_device if input_device is not None else open_input_device(device or "")
        self._grab(self._dev)
        self._thread = threading.Thread(target=self._run, name="keyboard-reader", daemon=True)
        self._thread.start()

    def poll(self) -> str | None:
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._uid is not None and self._seen and self._clock() >= self._until:
                self._uid = None
            if self._uid is not None:
                self._seen = True  # a typed UID is reported at least once
            return self._uid

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._release(self._dev)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _typed(self, uid: str) -> None:
        log.debug("keyboard reader: %s", uid)
        with self._lock:
            self._uid, self._until, self._seen = uid, self._clock() + self.hold_s, False

    def _grab(self, dev: Any) -> None:
        if not self.grab or not hasattr(dev, "grab"):
            return
        try:
            dev.grab()
        except OSError as exc:
            self._release(dev)
            raise ReaderUnavailableError(
                f"cannot grab the keyboard reader ({exc}): another program holds it"
            ) from exc

    def _release(self, dev: Any) -> None:
        if dev is None:
            return
        if self.grab and hasattr(dev, "ungrab"):
            try:
                dev.ungrab()
            except OSError:
                pass  # already gone or closed
        try:
            dev.close()
        except OSError:
            pass

    def _events(self, dev: Any) -> Iterator[Any]:
        fd = getattr(dev, "fd", None)
        if isinstance(fd, int):  # a real evdev device: select with a timeout so close() is prompt
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.25)
                if ready:
                    try:
                        yield from dev.read()
                    except BlockingIOError:
                        continue  # woken with nothing to read
        else:
            yield from dev.read_loop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._events(self._dev):
                    if self._stop.is_set():
                        return
                    if event.type == EV_KEY:
                        uid = self.parser.feed(event.code, event.value)
                        if uid is not None:
                            self._typed(uid)
                return  # the event stream ended
            except (OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.warning("keyboard reader lost: %s", exc)
                with self._lock:
                    self._error = ReaderBusError(f"keyboard reader lost: {exc}")
                if not self._reopen or not self._reopen_device():
                    return

    def _reopen_device(self) -> bool:
        self._release(self._dev)
        while not self._stop.wait(self.reopen_s):
            try:
                dev = open_input_device(self.device or "")
                self._grab(dev)
            except BadgeReaderError as exc:
                log.debug("keyboard reader still missing: %s", exc)
                continue
            log.info("keyboard reader back")
            self._dev = dev
            return True
        return False
