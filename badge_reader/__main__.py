"""Try a reader on its own, before (or without) running a node.

    python -m badge_reader mfrc522 [--bus 0] [--device 0] [--reset-pin 25|none]
        prints `placed UID` / `removed UID` as cards come and go
    python -m badge_reader keyboard DEVICE [--uid-bytes 4] [--no-grab]
        prints each line the wedge types, read in every `format`: tap a card
        whose UID you know to find the reader's format
    python -m badge_reader list
        lists input devices (for a keyboard reader's `device`)

Stops on Ctrl-C (or after `--seconds`). Output goes to stdout, diagnostics to
the log on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import TextIO

from badge_reader.base import BadgeReaderError, ReaderEvent, ReaderLoop
from badge_reader.keyboard import EV_KEY, FORMATS, KeyboardUidParser, explain, open_input_device

log = logging.getLogger("badge_reader")


def _pin(text: str) -> int | None:
    return None if text.lower() in ("none", "false", "-") else int(text)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m badge_reader", description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mfrc522", help="watch an MFRC522 on SPI")
    m.add_argument("--bus", type=int, default=0)
    m.add_argument("--device", type=int, default=0)
    m.add_argument("--speed", type=int, default=1_000_000, help="SPI clock in Hz")
    m.add_argument("--reset-pin", type=_pin, default=25, help="BCM pin on RST, or none")
    m.add_argument("--rate", type=float, default=20.0, help="polls per second")
    m.add_argument("--seconds", type=float, default=None, help="stop after this long")
    k = sub.add_parser("keyboard", help="show what a keyboard-wedge reader types")
    k.add_argument("device", help="/dev/input/... path or part of the device name")
    k.add_argument("--uid-bytes", type=int, default=4, choices=(4, 7, 10))
    k.add_argument("--no-grab", action="store_true", help="do not take the device exclusively")
    sub.add_parser("list", help="list input devices")
    return ap


def watch_mfrc522(args: argparse.Namespace, out: TextIO, pin_factory: object = None) -> int:
    from badge_reader.mfrc522 import Mfrc522Reader

    reader = Mfrc522Reader(
        bus=args.bus,
        device=args.device,
        speed_hz=args.speed,
        reset_pin=args.reset_pin,
        pin_factory=pin_factory,
    )
    out.write(f"MFRC522 version {reader.version:#04x}: place a card (Ctrl-C to stop)\n")
    out.flush()

    def show(event: ReaderEvent) -> None:
        out.write(f"{event.kind} {event.uid}\n")
        out.flush()

    loop = ReaderLoop(reader, show, rate_hz=args.rate)
    done = threading.Event()
    loop.start()
    try:
        done.wait(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        loop.stop()
        reader.close()
    return 0


def watch_keyboard(args: argparse.Namespace, out: TextIO) -> int:
    dev = open_input_device(args.device)
    out.write(f"{dev.name}: tap a card (Ctrl-C to stop)\n")
    out.flush()
    if not args.no_grab:
        dev.grab()
    parser = KeyboardUidParser("hex", args.uid_bytes)
    try:
        for event in dev.read_loop():
            if event.type != EV_KEY:
                continue
            text = parser.feed_line(event.code, event.value)
            if not text:
                continue
            out.write(f"typed {text}\n")
            for fmt, meaning in explain(text, args.uid_bytes).items():
                out.write(f"  {fmt:<{max(map(len, FORMATS))}}  {meaning}\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if not args.no_grab:
            try:
                dev.ungrab()
            except OSError:
                pass
        dev.close()
    return 0


def list_devices(out: TextIO) -> int:
    from badge_reader.keyboard import _import_evdev

    evdev = _import_evdev()
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError as exc:
            out.write(f"{path}  (cannot open: {exc})\n")
            continue
        out.write(f"{path}  {dev.name}\n")
        dev.close()
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.cmd == "mfrc522":
            return watch_mfrc522(args, stream)
        if args.cmd == "keyboard":
            return watch_keyboard(args, stream)
        return list_devices(stream)
    except BadgeReaderError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
