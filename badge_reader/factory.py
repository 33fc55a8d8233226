"""Build the reader a node config asks for.

Hardware backends are imported only when chosen, so a node with a simulated
or keyboard reader never needs spidev, and a laptop never needs evdev.
"""

from __future__ import annotations

import logging
from typing import Any

from badge_reader.base import Reader
from badge_reader.errors import ReaderConfigError
from badge_reader.sim import SimReader
from firmware_config.node_config import ReaderConfig

log = logging.getLogger(__name__)


def make_reader(cfg: ReaderConfig, *, simulate: bool, pin_factory: Any = None) -> Reader:
    """Return a ready reader for `cfg`; `simulate` forces a `SimReader` whatever the type.

    `pin_factory` is a gpiozero pin factory for the MFRC522 reset line
    (None = gpiozero's default). Raises a `BadgeReaderError` subclass when the
    hardware or its library is missing.
    """
    if simulate or cfg.type == "sim":
        if cfg.type != "sim":
            log.info("simulating the %s reader", cfg.type)
        return SimReader()
    if cfg.type == "mfrc522":
        from badge_reader.mfrc522 import Mfrc522Reader

        return Mfrc522Reader(
            bus=cfg.spi_bus,
            device=cfg.spi_device,
            speed_hz=cfg.spi_speed_hz,
            reset_pin=cfg.reset_pin,
            pin_factory=pin_factory,
        )
    if cfg.type == "keyboard":
        from badge_reader.keyboard import KeyboardReader

        if not cfg.device:
            raise ReaderConfigError(
                "reader.device is required for a keyboard reader "
                "(a /dev/input/by-id/... path or part of the device name)"
            )
        return KeyboardReader(cfg.device, format=cfg.format, uid_bytes=cfg.uid_bytes, grab=cfg.grab)
    raise ReaderConfigError(f"unknown reader type {cfg.type!r} (expected mfrc522, keyboard or sim)")
