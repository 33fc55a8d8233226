"""A small register-level driver for the NXP MFRC522 (the common "RC522" board) over spidev.

Why our own driver and not the `mfrc522` PyPI package: its `read_id` busy-loops
at 100 % CPU waiting for a card, returns the UID with its BCC checksum byte
appended, imports RPi.GPIO and forces BOARD pin numbering (clashing with
gpiozero's BCM numbering in the same process, and RPi.GPIO does not run on a
Pi 5), hard-codes the reset pin, and only runs cascade level 1 — so 7- and
10-byte UIDs (NTAG, DESFire, most phones) come out wrong.

This driver:

* answers one question per `poll()` — "which card is on the reader now?" —
  with one WUPA and, if a card answers, a full ISO/IEC 14443-3 anticollision
  and SELECT over cascade levels 1-3 (cascade tag 0x88, BCC check, CRC_A on
  SELECT/SAK), then a HLTA. WUPA (not REQA) wakes halted cards too, so a card
  left on the reader is reported again on every poll (presence detection);
* never loops unbounded: every wait on the chip is a bounded number of
  register reads with short sleeps, and the chip's own timer ends a
  transceive with no answer after ~10 ms;
* returns None for "no card" and for a failed read (collision it cannot
  resolve, CRC/BCC/parity error: after one clean retry), and raises
  `ReaderBusError` only when the SPI bus or the chip itself fails;
* drives the reset line (NRSTPD) through gpiozero, so it uses the same BCM pin
  numbering and pin factory as the rest of the node (MockFactory in tests);
* re-initialises the chip when it finds the antenna switched off (a brown-out
  resets the chip's registers) or after a bus error, with a back-off so a
  missing chip does not flood the log.

`spidev` is imported only when the reader is created without an `spi` object,
so this module imports on any machine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from badge_reader.base import BadgeReaderError
from badge_reader.errors import ReaderBusError, ReaderUnavailableError
from protocol.uid import uid_from_bytes

log = logging.getLogger(__name__)

# Registers (MFRC522 datasheet section 9).
COMMAND = 0x01
COM_I_EN = 0x02
DIV_I_EN = 0x03
COM_IRQ = 0x04
DIV_IRQ = 0x05
ERROR = 0x06
STATUS2 = 0x08
FIFO_DATA = 0x09
FIFO_LEVEL = 0x0A
CONTROL = 0x0C
BIT_FRAMING = 0x0D
COLL = 0x0E
MODE = 0x11
TX_MODE = 0x12
RX_MODE = 0x13
TX_CONTROL = 0x14
TX_ASK = 0x15
CRC_RESULT_H = 0x21
CRC_RESULT_L = 0x22
MOD_WIDTH = 0x24
T_MODE = 0x2A
T_PRESCALER = 0x2B
T_RELOAD_H = 0x2C
T_RELOAD_L = 0x2D
VERSION = 0x37

# Commands (CommandReg).
CMD_IDLE = 0x00
CMD_CALC_CRC = 0x03
CMD_TRANSCEIVE = 0x0C
CMD_SOFT_RESET = 0x0F
POWER_DOWN = 0x10  # CommandReg bit, set while the chip (re)starts

# ComIrqReg / DivIrqReg bits.
IRQ_TX = 0x40
IRQ_RX = 0x20
IRQ_IDLE = 0x10
IRQ_ERR = 0x02
IRQ_TIMER = 0x01
IRQ_CRC = 0x04  # DivIrqReg

# ErrorReg bits.
ERR_BUFFER_OVFL = 0x10
ERR_COLL = 0x08
ERR_CRC = 0x04
ERR_PARITY = 0x02
ERR_PROTOCOL = 0x01

# ISO/IEC 14443-3 type A.
PICC_REQA = 0x26
PICC_WUPA = 0x52
PICC_HLTA = 0x50
SEL_CL = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88
SAK_CASCADE = 0x04
NVB_SELECT = 0x70

# Timer: prescaler 169 -> 40 kHz (25 us ticks); reload 400 -> no-answer timeout 10 ms.
# A card answers REQA/WUPA/SELECT within ~0.1 ms, so 10 ms is generous.
T_PRESCALER_VALUE = 0xA9
T_RELOAD_VALUE = 400

_FAST_CHECKS = 3  # register reads before the wait loop starts sleeping
_SLOW_CHECKS = 40  # then at most this many reads, _WAIT_SLEEP_S apart (~20 ms)
_WAIT_SLEEP_S = 0.0005
_INIT_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def crc_a(data: bytes | Sequence[int]) -> bytes:
    """ISO/IEC 14443-3 CRC_A (preset 0x6363), low byte first, as appended to a frame."""
    crc = 0x6363
    for byte in data:
        b = (byte ^ crc) & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


class _ReadFailed(BadgeReaderError):
    """One read attempt went wrong (no answer, collision, CRC, BCC...); never leaves `poll`."""


class _NoCard(_ReadFailed):
    """Nothing answered the wake-up: the field is empty."""


class _NoAnswer(_ReadFailed):
    """The chip's timer ran out before any answer."""


@dataclass(frozen=True)
class _Frame:
    data: bytes
    last_bits: int  # valid bits in the last byte, 0 = all 8
    collision: bool
    coll_reg: int


class Mfrc522Reader:
    """An MFRC522 on SPI, polled for the UID of the card on it.

    `spi` is an object like `spidev.SpiDev` (already opened); None opens
    `/dev/spidev{bus}.{device}`. Either way `close()` closes it. `reset_pin`
    is the BCM number of the line wired to the chip's RST/NRSTPD (None: not
    wired; the driver then relies on a soft reset). `hw_crc` computes CRC_A
    with the chip's coprocessor instead of in Python (same result, more bus
    traffic; useful to check a clone chip).
    """

    def __init__(
        self,
        spi: Any = None,
        *,
        bus: int = 0,
        device: int = 0,
        speed_hz: int = 1_000_000,
        reset_pin: int | None = 25,
        pin_factory: Any = None,
        hw_crc: bool = False,
        retries: int = 1,
    ) -> None:
        self._lock = threading.Lock()
        self.hw_crc = hw_crc
        self.retries = retries
        self.version: int | None = None
        self._ready = False
        self._closed = False
        self._init_failures = 0
        self._next_init = 0.0
        self._tx_control = 0
        self._reset: Any = None
        self._spi = spi if spi is not None else self._open_spi(bus, device)
        self._where = f"SPI bus {bus} device {device}" if spi is None else "the given SPI device"
        try:
            self._spi.max_speed_hz = speed_hz
            self._spi.mode = 0
            if reset_pin is not None:
                from gpiozero import DigitalOutputDevice

                # Start high (running): a low NRSTPD is a hard power-down.
                self._reset = DigitalOutputDevice(
                    reset_pin, active_high=True, initial_value=True, pin_factory=pin_factory
                )
            with self._lock:
                self._init_chip()
        except BaseException:
            self._release()
            raise

    @staticmethod
    def _open_spi(bus: int, device: int) -> Any:
        try:
            import spidev  # type: ignore[import-not-found]
        except ImportError:
            raise ReaderUnavailableError(
                "the mfrc522 reader needs the 'spidev' module: pip install 'fabpass[pi]' "
                "(or apt install python3-spidev)"
            ) from None
        spi = spidev.SpiDev()
        try:
            spi.open(bus, device)
        except FileNotFoundError:
            raise ReaderUnavailableError(
                f"/dev/spidev{bus}.{device} does not exist: enable SPI "
                "(raspi-config, or dtparam=spi=on in config.txt) and reboot"
            ) from None
        except PermissionError:
            raise ReaderUnavailableError(
                f"no permission to open /dev/spidev{bus}.{device}: add the user to the 'spi' group"
            ) from None
        except OSError as exc:
            raise ReaderUnavailableError(f"cannot open /dev/spidev{bus}.{device}: {exc}") from exc
        return spi

    # -- public API ---------------------------------------------------------

    def poll(self) -> str | None:
        """Return the UID of the card on the reader (uppercase hex, no BCC) or None."""
        with self._lock:
            if self._closed:
                return None  # a poll racing close() while the node stops: nothing to report
            try:
                if not self._ready:
                    if time.monotonic() < self._next_init:
                        return None
                    self._init_chip()
                elif (tx := self._read(TX_CONTROL)) != self._tx_control:
                    # A brown-out resets the registers (antenna off); a dead chip or a loose
                    # wire reads 0x00/0xFF. Either way: start again (init checks VersionReg).
                    log.warning(
                        "MFRC522 TxControlReg reads %#04x (chip reset?): initialising again", tx
                    )
                    self._init_chip()
                return self._poll_card()
            except OSError as exc:
                self._ready = False
                raise ReaderBusError(f"SPI transfer to the MFRC522 failed: {exc}") from exc
            except ReaderBusError:
                self._ready = False
                raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._ready:
                    self._clear_bits(TX_CONTROL, 0x03)  # antenna off: no RF field left on
            except OSError:
                log.debug("could not switch the antenna off", exc_info=True)
            self._release()

    def _release(self) -> None:
        try:
            self._spi.close()
        except OSError:
            log.debug("closing SPI failed", exc_info=True)
        if self._reset is not None:
            self._reset.close()
            self._reset = None

    # -- chip set-up --------------------------------------------------------

    def _init_chip(self) -> None:
        """Reset and configure the chip; on failure back off before the next try."""
        try:
            self._do_init()
        except (OSError, ReaderBusError) as exc:
            self._ready = False
            delay = _INIT_BACKOFF_S[min(self._init_failures, len(_INIT_BACKOFF_S) - 1)]
            self._init_failures += 1
            self._next_init = time.monotonic() + delay
            if isinstance(exc, OSError):
                raise ReaderBusError(f"SPI transfer to the MFRC522 failed: {exc}") from exc
            raise
        self._ready = True
        self._init_failures = 0

    def _do_init(self) -> None:
        if self._reset is not None:
            # Hard reset: NRSTPD low powers the chip down, the rising edge restarts it.
            self._reset.off()
            time.sleep(0.001)
            self._reset.on()
            time.sleep(0.05)  # oscillator start-up (datasheet: well under 50 ms)
        version = self._read(VERSION)
        if version in (0x00, 0xFF):
            raise ReaderBusError(
                f"no MFRC522 answers on {self._where} (VersionReg reads {version:#04x}): "
                "check wiring and the 3.3 V supply"
            )
        self._write(COMMAND, CMD_SOFT_RESET)
        for _ in range(50):
            time.sleep(0.001)
            if not self._read(COMMAND) & POWER_DOWN:
                break
        else:
            raise ReaderBusError(f"the MFRC522 on {self._where} does not come out of reset")
        if version not in (0x91, 0x92, 0x88, 0x12, 0xB2):
            log.warning("unknown MFRC522 version %#04x (a clone?): trying anyway", version)
        if self.version != version:
            log.info("MFRC522 version %#04x on %s", version, self._where)
        self.version = version
        self._write(T_MODE, 0x80)  # TAuto: the timer starts at the end of each transmission
        self._write(T_PRESCALER, T_PRESCALER_VALUE)
        self._write(T_RELOAD_H, T_RELOAD_VALUE >> 8)
        self._write(T_RELOAD_L, T_RELOAD_VALUE & 0xFF)
        self._write(TX_ASK, 0x40)  # Force100ASK: 100 % ASK modulation (type A)
        self._write(MODE, 0x3D)  # CRC preset 0x6363 (CRC_A)
        self._write(TX_MODE, 0x00)  # 106 kbit/s, no hardware CRC: we add it to SELECT ourselves
        self._write(RX_MODE, 0x00)
        self._write(MOD_WIDTH, 0x26)
        self._clear_bits(COLL, 0x80)  # ValuesAfterColl=0: bits after a collision read as 0
        self._set_bits(TX_CONTROL, 0x03)  # antenna on (TX1, TX2)
        self._tx_control = self._read(TX_CONTROL)  # checked on each poll: config bits only
        if self._tx_control & 0x03 != 0x03:
            raise ReaderBusError(f"the MFRC522 on {self._where} does not keep its settings")

    # -- card protocol ------------------------------------------------------

    def _poll_card(self) -> str | None:
        for attempt in range(1 + self.retries):
            try:
                uid = self._select_card()
            except _NoCard:
                return None
            except _ReadFailed as exc:
                log.debug("MFRC522 read attempt %d failed: %s", attempt + 1, exc)
                self._halt()  # back to IDLE/HALT so the next WUPA gets an answer
                continue
            self._halt()  # halted, it answers the next poll's WUPA again
            return uid_from_bytes(uid)
        return None

    def _select_card(self) -> bytes:
        """WUPA, then anticollision + SELECT per cascade level; return the full UID."""
        try:
            atqa = self._transceive(bytes((PICC_WUPA,)), tx_last_bits=7)
        except _NoAnswer as exc:
            raise _NoCard(str(exc)) from None
        if len(atqa.data) != 2 and not atqa.collision:
            raise _ReadFailed(f"ATQA of {len(atqa.data)} bytes")
        uid = bytearray()
        for level, sel in enumerate(SEL_CL, start=1):
            cl = self._anticollision(sel)
            sak = self._select(sel, cl)
            if sak & SAK_CASCADE:
                if cl[0] != CASCADE_TAG:
                    raise _ReadFailed(f"SAK says UID not complete but CL{level} has no cascade tag")
                if level == len(SEL_CL):
                    raise _ReadFailed("SAK still says UID not complete after cascade level 3")
                uid += cl[1:4]
            else:
                uid += cl[0:4]
                return bytes(uid)
        raise _ReadFailed("no complete UID")  # pragma: no cover - loop always returns or raises

    def _anticollision(self, sel: int) -> bytes:
        """Resolve the 4 UID bytes of this cascade level (+BCC check), choosing 1 at each collision."""
        known = bytearray(5)  # UID CLn + BCC
        known_bits = 0
        for _ in range(33):  # at most one round per UID bit, plus the last
            full, part = divmod(known_bits, 8)
            nvb = ((2 + full) << 4) | part
            sent = bytes(known[: full + (1 if part else 0)])
            frame = self._transceive(bytes((sel, nvb)) + sent, tx_last_bits=part, rx_align=part)
            rx = bytearray(frame.data)
            if not rx:
                raise _ReadFailed("empty anticollision answer")
            # Merge the answer: its first byte continues our partial byte at bit `part`.
            received = bytearray(known[:full])
            if part:
                low = (1 << part) - 1
                rx[0] = (known[full] & low) | (rx[0] & ~low & 0xFF)
            received += rx
            if frame.collision:
                if frame.coll_reg & 0x20:  # CollPosNotValid
                    raise _ReadFailed("collision outside the UID bits")
                pos = frame.coll_reg & 0x1F or 32
                bits = full * 8 + pos  # UID bits known once the colliding bit is chosen
                if bits <= known_bits or bits > 32:
                    raise _ReadFailed(f"collision position {bits} makes no progress")
                received = received[: (bits + 7) // 8] + bytes(5)
                known[:] = received[:5]
                byte, bit = divmod(bits - 1, 8)
                keep = (1 << (bit + 1)) - 1
                known[byte] = (known[byte] & keep) | (1 << bit)  # choose 1, clear later bits
                for i in range(byte + 1, 5):
                    known[i] = 0
                known_bits = bits
                continue
            if len(received) != 5:
                raise _ReadFailed(f"anticollision answer of {len(received)} bytes")
            if received[0] ^ received[1] ^ received[2] ^ received[3] != received[4]:
                raise _ReadFailed("BCC mismatch")
            return bytes(received)
        raise _ReadFailed("anticollision did not converge")

    def _select(self, sel: int, cl: bytes) -> int:
        """SELECT with UID CLn + BCC; return the SAK after checking its CRC_A."""
        frame = bytes((sel, NVB_SELECT)) + cl
        answer = self._transceive(frame + self._crc(frame))
        if answer.collision or len(answer.data) != 3 or answer.last_bits:
            raise _ReadFailed(f"bad SAK frame {answer.data.hex()}")
        if self._crc(answer.data[:1]) != answer.data[1:]:
            raise _ReadFailed("CRC error in SAK")
        return answer.data[0]

    def _halt(self) -> None:
        """HLTA: a card in the field stops answering REQA until the next WUPA."""
        frame = bytes((PICC_HLTA, 0x00))
        try:
            self._transceive(frame + self._crc(frame))
        except _ReadFailed:
            pass  # the expected outcome: a halted card does not answer

    # -- chip primitives ----------------------------------------------------

    def _crc(self, data: bytes) -> bytes:
        return self._chip_crc(data) if self.hw_crc else crc_a(data)

    def _chip_crc(self, data: bytes) -> bytes:
        self._write(COMMAND, CMD_IDLE)
        self._write(DIV_IRQ, IRQ_CRC)  # Set2=0: clear CRCIRq
        self._write(FIFO_LEVEL, 0x80)  # flush
        self._write(FIFO_DATA, *data)
        self._write(COMMAND, CMD_CALC_CRC)
        for i in range(_FAST_CHECKS + _SLOW_CHECKS):
            if self._read(DIV_IRQ) & IRQ_CRC:
                break
            if i >= _FAST_CHECKS:
                time.sleep(_WAIT_SLEEP_S)
        else:
            raise ReaderBusError("the MFRC522 CRC coprocessor does not finish")
        self._write(COMMAND, CMD_IDLE)
        return bytes((self._read(CRC_RESULT_L), self._read(CRC_RESULT_H)))

    def _transceive(self, data: bytes, tx_last_bits: int = 0, rx_align: int = 0) -> _Frame:
        """Send `data`, wait (bounded) for the answer, return it; raise _ReadFailed on none."""
        self._write(COMMAND, CMD_IDLE)
        self._write(COM_IRQ, 0x7F)  # Set1=0: clear every IRQ bit
        self._write(FIFO_LEVEL, 0x80)
        self._write(FIFO_DATA, *data)
        framing = (rx_align << 4) | tx_last_bits
        self._write(BIT_FRAMING, framing)
        self._write(COMMAND, CMD_TRANSCEIVE)
        self._write(BIT_FRAMING, framing | 0x80)  # StartSend
        irq = 0
        for i in range(_FAST_CHECKS + _SLOW_CHECKS):
            irq = self._read(COM_IRQ)
            if irq & (IRQ_RX | IRQ_IDLE | IRQ_TIMER):
                break
            if i >= _FAST_CHECKS:
                time.sleep(_WAIT_SLEEP_S)
        self._write(BIT_FRAMING, framing)
        self._write(COMMAND, CMD_IDLE)
        if not irq & (IRQ_RX | IRQ_IDLE):
            if irq & IRQ_TIMER:
                raise _NoAnswer("no answer")
            raise _ReadFailed("chip did not finish in time")
        error = self._read(ERROR)
        if error & (ERR_BUFFER_OVFL | ERR_PARITY | ERR_PROTOCOL):
            raise _ReadFailed(f"ErrorReg {error:#04x}")
        level = self._read(FIFO_LEVEL) & 0x7F
        rx = self._read_fifo(level)
        last_bits = self._read(CONTROL) & 0x07
        coll = self._read(COLL) if error & ERR_COLL else 0
        return _Frame(rx, last_bits, bool(error & ERR_COLL), coll)

    def _read(self, reg: int) -> int:
        return int(self._spi.xfer2([0x80 | ((reg << 1) & 0x7E), 0])[1])

    def _read_fifo(self, count: int) -> bytes:
        if count == 0:
            return b""
        addr = 0x80 | ((FIFO_DATA << 1) & 0x7E)
        return bytes(self._spi.xfer2([addr] * count + [0])[1:])

    def _write(self, reg: int, *values: int) -> None:
        self._spi.xfer2([(reg << 1) & 0x7E, *values])

    def _set_bits(self, reg: int, mask: int) -> None:
        self._write(reg, self._read(reg) | mask)

    def _clear_bits(self, reg: int, mask: int) -> None:
        self._write(reg, self._read(reg) & ~mask & 0xFF)
