"""The badge_reader package's error types, all under `BadgeReaderError` (defined in base.py)."""

from __future__ import annotations

from badge_reader.base import BadgeReaderError


class InvalidUidError(BadgeReaderError, ValueError):
    """A UID given to a reader (sim place/tap) is not 8, 14 or 20 hex digits."""


class SimLineError(BadgeReaderError, ValueError):
    """A simulation line (contract section 5) that is not one of the known commands."""


class ReaderUnavailableError(BadgeReaderError):
    """The backend's library (spidev, evdev) or device is missing; the message says what to install or check."""


class ReaderBusError(BadgeReaderError):
    """The SPI bus or the reader chip failed (I/O error, chip not answering)."""


class ReaderConfigError(BadgeReaderError, ValueError):
    """The reader section of the node config cannot build a reader."""
