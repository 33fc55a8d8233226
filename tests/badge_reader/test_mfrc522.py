"""The real MFRC522 driver against a register-level fake chip behind a fake SpiDev."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest
from fake_mfrc522 import CT, FakeCard, FakeMfrc522, FakeSpiDev, crc_bytes
from gpiozero.pins.mock import MockFactory
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from badge_reader import ReaderBusError, ReaderEvent, ReaderLoop, ReaderUnavailableError
from badge_reader.mfrc522 import Mfrc522Reader, crc_a

UID4 = "04A1B2C3"
UID7 = "04112233445566"
UID10 = "0102030405060708090A"


@pytest.fixture
def pins() -> MockFactory:
    return MockFactory()


def make(chip: FakeMfrc522 | None = None, **kw: object) -> tuple[Mfrc522Reader, FakeSpiDev]:
    spi = FakeSpiDev(chip)
    kw.setdefault("reset_pin", None)
    return Mfrc522Reader(spi, **kw), spi  # type: ignore[arg-type]


def test_crc_a_known_vectors() -> None:
    assert crc_a(b"\x00\x00") == bytes.fromhex("A01E")  # ISO/IEC 14443-3 annex B
    assert crc_a(b"\x50\x00") == bytes.fromhex("57CD")  # HLTA
    for data in (b"", b"\x93\x70\x88\x04\x11\x22\xbf", bytes(range(64))):
        assert crc_a(data) == crc_bytes(data)


def test_init_configures_chip_and_spi() -> None:
    reader, spi = make()
    chip = spi.chip
    assert spi.mode == 0 and spi.max_speed_hz == 1_000_000
    assert chip.soft_resets == 1
    assert chip.antenna_on
    assert chip.regs[0x15] == 0x40  # TxASK: 100 % ASK
    assert chip.regs[0x11] == 0x3D  # ModeReg: CRC preset 0x6363
    assert chip.regs[0x2A] == 0x80  # TAuto
    assert reader.version == 0x92
    reader.close()
    assert spi.closed and not chip.antenna_on


@pytest.mark.parametrize("uid", [UID4, UID7, UID10])
def test_reads_4_7_10_byte_uids_without_bcc(uid: str) -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(uid))
    reader, _ = make(chip)
    assert reader.poll() == uid
    assert chip.cards[0].state == "HALT"  # halted after the read


@pytest.mark.parametrize("uid", [UID4, UID7, UID10])
def test_hardware_crc_gives_the_same_result(uid: str) -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(uid))
    reader, _ = make(chip, hw_crc=True)
    assert reader.poll() == uid
    assert reader.poll() == uid


def test_no_card_gives_none_with_one_wakeup() -> None:
    chip = FakeMfrc522()
    reader, _ = make(chip)
    assert reader.poll() is None
    assert reader.poll() is None
    assert chip.count(0x52) == 2  # one WUPA per poll, no retry on an empty field
    assert chip.count(0x93) == 0


def test_card_left_on_reader_is_reported_on_every_poll() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID7))
    reader, _ = make(chip)
    assert [reader.poll() for _ in range(5)] == [UID7] * 5
    chip.remove_all()
    assert reader.poll() is None
    chip.place(FakeCard.from_hex(UID4))
    assert reader.poll() == UID4


def test_two_cards_resolved_by_anticollision_and_stable() -> None:
    # Same first UID byte, differing later: a collision past the first byte.
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex("04A1B2C3"), FakeCard.from_hex("04A1B3C3"))
    reader, _ = make(chip)
    first = reader.poll()
    assert first in ("04A1B2C3", "04A1B3C3")
    assert [reader.poll() for _ in range(3)] == [first] * 3


@pytest.mark.parametrize(
    "uids",
    [
        ["04A1B2C3", "05A1B2C3", "06A1B2C3"],  # collisions in the first byte
        [UID7, "04112233445567"],  # collision at cascade level 2
        [UID10, "0102030405060708090B", "0102030405070708090A"],  # level 2 and 3
        ["04A1B2C3", UID7, UID10],  # mixed sizes: cascade tag vs plain byte
        ["00000000", "FFFFFFFF", "0F0F0F0F", "F0F0F0F0"],  # every bit collides
    ],
)
def test_many_cards_still_give_one_valid_uid(uids: list[str]) -> None:
    chip = FakeMfrc522()
    chip.place(*(FakeCard.from_hex(u) for u in uids))
    reader, _ = make(chip)
    got = reader.poll()
    assert got in uids
    assert reader.poll() == got


def test_collision_choice_takes_ones_then_other_card_after_removal() -> None:
    a, b = FakeCard.from_hex("04A1B2C3"), FakeCard.from_hex("04A1B2C2")
    chip = FakeMfrc522()
    chip.place(a, b)
    reader, _ = make(chip)
    assert reader.poll() == "04A1B2C3"  # the 1 wins at the colliding bit
    chip.cards.remove(a)
    a.power_off()
    assert reader.poll() == "04A1B2C2"


def test_sak_crc_error_gives_clean_retry() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID7))
    reader, _ = make(chip)
    chip.corrupt_next_sak_crc = 1
    assert reader.poll() == UID7  # retried within the poll
    chip.corrupt_next_sak_crc = 10
    assert reader.poll() is None  # retries exhausted: None, not an exception
    chip.corrupt_next_sak_crc = 0
    assert reader.poll() == UID7


def test_parity_error_gives_clean_retry_or_none() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, _ = make(chip)
    chip.parity_error_next = 1  # garbles the ATQA
    assert reader.poll() == UID4  # halted and woken again within the poll
    chip.parity_error_next = 2  # both attempts garbled
    assert reader.poll() is None
    assert reader.poll() == UID4  # the card was left in a state that answers WUPA


def test_reset_pin_pulsed(pins: MockFactory) -> None:
    spi = FakeSpiDev()
    reader = Mfrc522Reader(spi, reset_pin=25, pin_factory=pins)
    pin = pins.pin(25)
    # Driven high (running), then pulled low and released: a hard reset.
    pin.assert_states([False, True, False, True])
    reader.close()
    assert spi.closed


def test_chip_reset_behind_our_back_is_reinitialised() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, _ = make(chip)
    assert reader.poll() == UID4
    chip.soft_reset()  # brown-out: registers back to defaults, antenna off
    assert not chip.antenna_on
    assert reader.poll() == UID4
    assert chip.antenna_on


def test_bus_error_raises_reader_bus_error_then_recovers() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, spi = make(chip)
    spi.fail_with = OSError(121, "Remote I/O error")
    with pytest.raises(ReaderBusError, match="SPI transfer"):
        reader.poll()
    spi.fail_with = None
    assert reader.poll() == UID4  # the chip is initialised again at once
    assert chip.soft_resets == 2


def test_dead_bus_backs_off_instead_of_raising_every_poll() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, spi = make(chip)
    spi.fail_with = OSError(5, "Input/output error")
    with pytest.raises(ReaderBusError):
        reader.poll()  # the poll's transfer fails
    with pytest.raises(ReaderBusError):
        reader.poll()  # the re-init fails: back off
    before = spi.transfers
    assert [reader.poll() for _ in range(5)] == [None] * 5  # quiet during the back-off
    assert spi.transfers == before
    spi.fail_with = None
    reader._next_init = 0.0  # the back-off has passed
    assert reader.poll() == UID4


def test_missing_chip_is_a_clear_error() -> None:
    with pytest.raises(ReaderBusError, match="no MFRC522 answers"):
        make(FakeMfrc522(version=0x00))


def test_missing_spidev_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(ReaderUnavailableError, match="spidev"):
        Mfrc522Reader(reset_pin=None)


def test_poll_after_close_is_quiet() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, spi = make(chip)
    reader.close()
    reader.close()  # idempotent
    before = spi.transfers
    assert reader.poll() is None  # no traffic on a closed bus
    assert spi.transfers == before


def test_reader_loop_idles_without_spinning() -> None:
    """~1 s of ReaderLoop at 20 Hz: about 20 polls and little CPU, card or not."""
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID10))
    reader, _ = make(chip)
    events: list[ReaderEvent] = []
    placed = threading.Event()

    def on_event(ev: ReaderEvent) -> None:
        events.append(ev)
        placed.set()

    loop = ReaderLoop(reader, on_event, rate_hz=20)
    cpu0, wall0 = time.process_time(), time.monotonic()
    loop.start()
    assert placed.wait(2.0)
    time.sleep(max(0.0, 0.5 - (time.monotonic() - wall0)))
    chip.remove_all()  # second half: empty field
    time.sleep(max(0.0, 1.0 - (time.monotonic() - wall0)))
    loop.stop()
    cpu = time.process_time() - cpu0
    polls = chip.count(0x52)  # one WUPA per poll (no read failed here)
    assert 12 <= polls <= 30
    assert cpu < 0.3
    assert events == [ReaderEvent("placed", UID10), ReaderEvent("removed", UID10)]
    reader.close()


_uid_bytes = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@settings(max_examples=150, deadline=None)
@given(st.lists(_uid_bytes, min_size=1, max_size=4, unique=True))
def test_any_card_population_reads_one_listed_uid(uids: list[bytes]) -> None:
    # ISO 14443 reserves 0x88 as the first byte of a UID's CL1 for the cascade tag.
    assume(all(u[0] != CT for u in uids))
    chip = FakeMfrc522()
    chip.place(*(FakeCard(u) for u in uids))
    reader, _ = make(chip)
    got = reader.poll()
    assert got in {u.hex().upper() for u in uids}
    assert reader.poll() == got


def test_make_reader_mfrc522_opens_spidev(
    monkeypatch: pytest.MonkeyPatch, pins: MockFactory
) -> None:
    from badge_reader import make_reader
    from firmware_config.node_config import ReaderConfig

    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID7))
    spis: list[FakeSpiDev] = []

    def spidev_factory() -> FakeSpiDev:
        spis.append(FakeSpiDev(chip))
        return spis[-1]

    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=spidev_factory))
    cfg = ReaderConfig(type="mfrc522", spi_bus=1, spi_device=2, spi_speed_hz=500_000, reset_pin=24)
    reader = make_reader(cfg, simulate=False, pin_factory=pins)
    try:
        assert isinstance(reader, Mfrc522Reader)
        assert spis[0].opened == (1, 2) and spis[0].max_speed_hz == 500_000
        assert pins.pin(24).state  # out of reset
        assert reader.poll() == UID7
    finally:
        reader.close()


def test_chip_gone_mid_run_is_detected_and_backed_off() -> None:
    chip = FakeMfrc522()
    chip.place(FakeCard.from_hex(UID4))
    reader, spi = make(chip)
    assert reader.poll() == UID4
    real_read = chip.read
    chip.read = lambda reg: 0xFF  # type: ignore[method-assign]  # MISO floating high
    with pytest.raises(ReaderBusError, match="no MFRC522 answers"):
        reader.poll()
    before = spi.transfers
    assert reader.poll() is None  # backing off, quietly
    assert spi.transfers == before
    chip.read = real_read  # type: ignore[method-assign]
    reader._next_init = 0.0
    assert reader.poll() == UID4
