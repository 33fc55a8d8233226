"""A register-level fake MFRC522 behind a fake `spidev.SpiDev`, with simulated ISO 14443-A cards.

The real driver talks to this exactly as to the chip: SPI address bytes
`(addr << 1) & 0x7E` (| 0x80 to read), the FIFO, CommandReg (Idle,
Transceive, CalcCRC, SoftReset), ComIrqReg/DivIrqReg with their Set bits,
ErrorReg, BitFramingReg (TxLastBits, RxAlign, StartSend), ControlReg
RxLastBits and CollReg. Frames are handled bit by bit (LSB first) so
anticollision with partial bytes and real bit collisions between cards work.
The cards implement IDLE/READY/ACTIVE/HALT with cascade levels 1-3.

CRC_A here is written bit by bit (reflected polynomial 0x8408), independent
of the driver's table-free byte version, so a wrong driver CRC is caught.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CT = 0x88


def crc16_bitwise(data: bytes, preset: int = 0x6363) -> int:
    crc = preset
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def crc_bytes(data: bytes) -> bytes:
    crc = crc16_bitwise(data)
    return bytes((crc & 0xFF, crc >> 8))


def to_bits(data: bytes, nbits: int | None = None) -> list[int]:
    bits = [(b >> i) & 1 for b in data for i in range(8)]
    return bits if nbits is None else bits[:nbits]


def from_bits(bits: list[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)


@dataclass
class FakeCard:
    """An ISO 14443-A card with a 4-, 7- or 10-byte UID."""

    uid: bytes
    sak: int = 0x08
    state: str = "IDLE"  # IDLE, READY, ACTIVE, HALT
    was_halted: bool = False
    level: int = 1

    @classmethod
    def from_hex(cls, uid: str, sak: int = 0x08) -> FakeCard:
        return cls(bytes.fromhex(uid), sak)

    @property
    def levels(self) -> list[bytes]:
        u = self.uid
        if len(u) == 4:
            parts = [u]
        elif len(u) == 7:
            parts = [bytes((CT,)) + u[:3], u[3:7]]
        elif len(u) == 10:
            parts = [bytes((CT,)) + u[:3], bytes((CT,)) + u[3:6], u[6:10]]
        else:
            raise ValueError("UID must be 4, 7 or 10 bytes")
        return [p + bytes((p[0] ^ p[1] ^ p[2] ^ p[3],)) for p in parts]

    @property
    def atqa(self) -> bytes:
        size = {4: 0, 7: 1, 10: 2}[len(self.uid)]
        return bytes((0x04 | (size << 6), 0x00))

    def power_off(self) -> None:
        self.state, self.was_halted, self.level = "IDLE", False, 1

    def _fallback(self) -> None:
        self.state = "HALT" if self.was_halted else "IDLE"
        self.level = 1

    def receive(self, bits: list[int]) -> list[int] | None:
        """Handle one frame; return the answer bits or None (silence)."""
        if len(bits) == 7:
            cmd = from_bits(bits)[0]
            woken = ("IDLE",) if cmd == 0x26 else ("IDLE", "HALT") if cmd == 0x52 else ()
            if self.state in woken:
                self.was_halted = self.state == "HALT"
                self.state, self.level = "READY", 1
                return to_bits(self.atqa)
            if self.state in ("READY", "ACTIVE"):
                self._fallback()
            return None
        if len(bits) < 16:
            if self.state in ("READY", "ACTIVE"):
                self._fallback()
            return None
        head = from_bits(bits[:16])
        sel, nvb = head[0], head[1]
        if self.state == "ACTIVE" and len(bits) == 32:
            frame = from_bits(bits)
            if frame[:2] == b"\x50\x00" and frame[2:] == crc_bytes(frame[:2]):
                self.state = "HALT"
                self.was_halted = True
            else:
                self._fallback()
            return None
        if self.state != "READY" or sel not in (0x93, 0x95, 0x97):
            if self.state in ("READY", "ACTIVE"):
                self._fallback()
            return None
        if sel != (0x93, 0x95, 0x97)[self.level - 1]:
            self._fallback()
            return None
        cl = self.levels[self.level - 1]
        if nvb == 0x70:
            frame = from_bits(bits)
            if len(bits) != 72 or frame[7:9] != crc_bytes(frame[:7]):
                self._fallback()
                return None
            if frame[2:7] != cl:
                self._fallback()
                return None
            last = self.level == len(self.levels)
            sak = self.sak if last else 0x04
            if last:
                self.state = "ACTIVE"
            else:
                self.level += 1
            return to_bits(bytes((sak,)) + crc_bytes(bytes((sak,))))
        known = ((nvb >> 4) - 2) * 8 + (nvb & 0x0F)
        sent = bits[16:]
        if len(sent) != known or known > 40:
            self._fallback()
            return None
        mine = to_bits(cl)
        if mine[:known] != sent:
            return None  # not me: stay READY, stay silent
        return mine[known:]


@dataclass
class FakeMfrc522:
    """The chip: registers, FIFO, commands; `cards` are the cards in its field."""

    version: int = 0x92
    cards: list[FakeCard] = field(default_factory=list)
    regs: dict[int, int] = field(default_factory=dict)
    fifo: bytearray = field(default_factory=bytearray)
    frames: list[bytes] = field(default_factory=list)  # every frame sent to the field
    corrupt_next_sak_crc: int = 0  # answer this many SAKs with a wrong CRC
    parity_error_next: int = 0  # report a parity error on this many frames with an answer
    soft_resets: int = 0

    def __post_init__(self) -> None:
        self.soft_reset()
        self.soft_resets = 0

    # -- test helpers --
    def place(self, *cards: FakeCard) -> None:
        self.cards.extend(cards)

    def remove_all(self) -> None:
        for card in self.cards:
            card.power_off()
        self.cards.clear()

    def count(self, first_byte: int) -> int:
        """How many frames starting with `first_byte` were sent to the field."""
        return sum(1 for f in self.frames if f[0] == first_byte)

    @property
    def antenna_on(self) -> bool:
        return self.regs[0x14] & 0x03 == 0x03

    # -- chip behaviour --
    def soft_reset(self) -> None:
        self.soft_resets += 1
        self.regs = {r: 0 for r in range(0x40)}
        self.regs.update(
            {
                0x01: 0x20,
                0x02: 0x80,
                0x04: 0x14,
                0x0A: 0,
                0x0B: 0x08,
                0x0C: 0x10,
                0x0E: 0xA0,
                0x11: 0x3F,
                0x14: 0x80,
                0x15: 0x00,
                0x24: 0x26,
                0x26: 0x48,
                0x37: self.version,
            }
        )
        self.fifo.clear()
        for card in self.cards:
            card.power_off()  # the field went down during the reset

    def read(self, reg: int) -> int:
        if reg == 0x09:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg]

    def write(self, reg: int, value: int) -> None:
        if reg == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(value)
            return
        if reg == 0x0A:
            if value & 0x80:
                self.fifo.clear()
            return
        if reg in (0x04, 0x05):  # Set1/Set2 semantics
            mask = value & 0x7F
            self.regs[reg] = self.regs[reg] | mask if value & 0x80 else self.regs[reg] & ~mask
            return
        if reg == 0x01:
            self.regs[0x01] = value
            self._command(value & 0x0F)
            return
        if reg == 0x14:
            was_on = self.antenna_on
            self.regs[0x14] = value
            if was_on and not self.antenna_on:
                for card in self.cards:
                    card.power_off()
            return
        if reg == 0x37:
            return  # read-only
        self.regs[reg] = value
        if reg == 0x0D and value & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
            self._transceive()

    def _command(self, cmd: int) -> None:
        if cmd == 0x0F:
            self.soft_reset()
            self.regs[0x01] = 0x00  # out of power-down at once
        elif cmd == 0x03:  # CalcCRC over the FIFO
            preset = {0: 0x0000, 1: 0x6363, 2: 0xA671, 3: 0xFFFF}[self.regs[0x11] & 0x03]
            crc = crc16_bitwise(bytes(self.fifo), preset)
            self.fifo.clear()
            self.regs[0x22], self.regs[0x21] = crc & 0xFF, crc >> 8
            self.regs[0x05] |= 0x04

    def _transceive(self) -> None:
        framing = self.regs[0x0D]
        tx_last, rx_align = framing & 0x07, (framing >> 4) & 0x07
        data = bytes(self.fifo)
        self.fifo.clear()
        nbits = len(data) * 8 - ((8 - tx_last) if tx_last else 0)
        bits = to_bits(data, nbits)
        self.frames.append(data)
        self.regs[0x06] = 0  # ErrorReg
        irq = 0x40  # TxIRq
        answers = []
        if self.antenna_on:
            for card in self.cards:
                ans = card.receive(bits)
                if ans is not None:
                    answers.append(ans)
        if not answers:
            self.regs[0x04] |= irq | 0x01  # TimerIRq: nobody answered
            return
        length = max(len(a) for a in answers)
        merged: list[int] = []
        coll_at: int | None = None
        for i in range(length):
            values = {a[i] for a in answers if i < len(a)}
            if len(values) > 1 and coll_at is None:
                coll_at = i
            if coll_at is not None and not self.regs[0x0E] & 0x80:
                merged.append(0)  # ValuesAfterColl=0: cleared after the collision
            else:
                merged.append(values.pop() if len(values) == 1 else 1)
        if len(bits) == 72 and data[1] == 0x70 and self.corrupt_next_sak_crc:
            self.corrupt_next_sak_crc -= 1
            merged[-1] ^= 1
        stream = [0] * rx_align + merged
        self.fifo.extend(from_bits(stream))
        self.regs[0x0C] = (self.regs[0x0C] & ~0x07) | (len(stream) % 8)
        irq |= 0x20  # RxIRq
        if coll_at is not None:
            self.regs[0x06] |= 0x08
            pos = (rx_align + coll_at + 1) % 32
            self.regs[0x0E] = (self.regs[0x0E] & 0x80) | pos
            irq |= 0x02
        if self.parity_error_next:
            self.parity_error_next -= 1
            self.regs[0x06] |= 0x02
            irq |= 0x02
        self.regs[0x04] |= irq


class FakeSpiDev:
    """Stands in for `spidev.SpiDev`, wired to a FakeMfrc522."""

    def __init__(self, chip: FakeMfrc522 | None = None) -> None:
        self.chip = chip or FakeMfrc522()
        self.max_speed_hz = 0
        self.mode = 3
        self.opened: tuple[int, int] | None = None
        self.closed = False
        self.transfers = 0
        self.fail_with: OSError | None = None  # raised by every transfer while set

    def open(self, bus: int, device: int) -> None:
        self.opened = (bus, device)

    def close(self) -> None:
        self.closed = True

    def xfer2(self, data: list[int]) -> list[int]:
        self.transfers += 1
        if self.fail_with is not None:
            raise self.fail_with
        first = data[0]
        reg = (first >> 1) & 0x3F
        if first & 0x80:  # read: every byte but the last names the next register to read
            out = [0]
            for i in range(1, len(data)):
                out.append(self.chip.read(reg))
                reg = (data[i] >> 1) & 0x3F
            return out
        for value in data[1:]:
            self.chip.write(reg, value)
        return [0] * len(data)

    xfer = xfer2
