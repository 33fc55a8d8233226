"""Badge readers behind one small interface: `poll() -> uid | None` plus presence events."""

from badge_reader.base import BadgeReaderError, PresenceTracker, Reader, ReaderEvent, ReaderLoop
from badge_reader.errors import (
    InvalidUidError,
    ReaderBusError,
    ReaderConfigError,
    ReaderUnavailableError,
    SimLineError,
)
from badge_reader.factory import make_reader
from badge_reader.keyboard import KeyboardReader, KeyboardUidParser
from badge_reader.mfrc522 import Mfrc522Reader
from badge_reader.sim import SimCommand, SimReader, parse_sim_line

__all__ = [
    "BadgeReaderError",
    "InvalidUidError",
    "KeyboardReader",
    "KeyboardUidParser",
    "Mfrc522Reader",
    "PresenceTracker",
    "Reader",
    "ReaderBusError",
    "ReaderConfigError",
    "ReaderEvent",
    "ReaderLoop",
    "ReaderUnavailableError",
    "SimCommand",
    "SimLineError",
    "SimReader",
    "make_reader",
    "parse_sim_line",
]
