"""Contract section 6: refusal reasons of a plug node and the optional power/energy fields."""

from __future__ import annotations

import uuid

import pytest

from protocol import Event, ProtocolError, format_ts, utcnow


def event(etype: str, **data: object) -> dict[str, object]:
    return {"v": 1, "id": str(uuid.uuid4()), "node": "printer-1", "boot": str(uuid.uuid4()),
            "seq": 1, "ts": format_ts(utcnow()), "type": etype, "data": data}


SESSION = {"session": str(uuid.uuid4()), "uid": "04A1B2C3", "member": 1}
ENDED = {**SESSION, "started": "2026-11-22T10:00:00Z", "ended": "2026-11-22T11:00:00Z",
         "duration_s": 3600, "active_s": 3000, "reason": "badge_out"}


@pytest.mark.parametrize("reason", ["actuator_failed", "actuator_offline"])
def test_plug_refusal_reasons_decode(reason: str) -> None:
    ev = Event.decode(event("badge.denied", uid="04A1B2C3", reason=reason))
    assert ev.data["reason"] == reason


def test_energy_and_power_are_optional_numbers() -> None:
    assert Event.decode(event("session.ended", **ENDED, energy_wh=812.5)).data["energy_wh"] == 812.5
    assert "energy_wh" not in Event.decode(event("session.ended", **ENDED)).data
    beat = {**SESSION, "elapsed_s": 60, "active_s": 50}
    assert Event.decode(event("session.heartbeat", **beat, power_w=118.0)).data["power_w"] == 118
    for bad in (-1, "lots", True):
        with pytest.raises(ProtocolError, match="energy_wh"):
            Event.decode(event("session.ended", **ENDED, energy_wh=bad))
        with pytest.raises(ProtocolError, match="power_w"):
            Event.decode(event("session.heartbeat", **beat, power_w=bad))
