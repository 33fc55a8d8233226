"""The pure pricing rules (no database): blocks, fees, minimum, energy, categories, thresholds."""

from __future__ import annotations

import pytest

from server.errors import Invalid
from server.services.tariffs import min_balance, price, thresholds, validate_tariff


def spec(**kw: object) -> dict[str, object]:
    return validate_tariff(kw)


@pytest.mark.parametrize(("seconds", "minutes"), [
    (0.0, 0), (0.001, 10), (600.0, 10), (600.001, 20), (599.999, 10), (3600.0, 60)])
def test_started_blocks(seconds: float, minutes: int) -> None:
    assert price(spec(per_minute_cents=1, round_minutes=10), [], seconds).minutes == minutes


def test_fee_minimum_and_energy_rounding() -> None:
    s = spec(per_minute_cents=10, session_cents=25, minimum_cents=100, per_kwh_cents=30)
    assert price(s, [], 60).cents == 100  # 25 + 10 = 35, raised to the minimum
    assert price(s, [], 600, energy_wh=1250).cents == 25 + 100 + 38  # 1.25 kWh x 30 = 37.5 -> 38
    assert price(s, [], 600, energy_wh=None).cents == 125


def test_active_basis_uses_active_seconds() -> None:
    s = spec(basis="active", per_minute_cents=10)
    assert price(s, [], 3600, active_s=90).minutes == 2


def test_categories_inherit_and_the_cheapest_wins() -> None:
    s = spec(per_minute_cents=100, session_cents=50, min_balance_cents=1000,
             categories={"Étudiant": {"per_minute_cents": 40},
                         "asso": {"session_cents": 0, "min_balance_cents": 0}})
    assert (price(s, ["étudiant"], 60).cents, price(s, ["étudiant"], 60).category) == (90, "Étudiant")
    assert price(s, ["asso"], 60).cents == 100
    assert price(s, ["asso", "étudiant"], 600).category == "Étudiant"  # 450 < 1000
    assert price(s, [], 60).category is None
    assert (min_balance(s, []), min_balance(s, ["asso"]), min_balance(s, ["étudiant"])) == (1000, 0, 1000)
    assert thresholds(s) == {0, 1000}
    assert min_balance(spec(per_minute_cents=1), []) is None


@pytest.mark.parametrize("raw", [{"per_minute_cents": True}, {"round_minutes": 1.0},
                                 {"categories": []}, {"categories": {"": {}}},
                                 {"categories": {"x": {"valid_from": "now"}}}])
def test_more_bad_input(raw: dict[str, object]) -> None:
    with pytest.raises(Invalid) as e:
        validate_tariff(raw)
    assert e.value.fields and all(k.startswith("tariff") for k in e.value.fields)
