"""The pure rules of paid use: what a tariff may say, and what a session costs under it.

No database and no clock here, so the same inputs always give the same integer cents (the
property tests and the recomputation of corrected sessions rely on it). Money is integer cents
end to end; durations become billed minutes by whole blocks of `round_minutes` ("per started N
minutes"), from the node's monotonic durations, so a session across midnight or a DST change
costs what it lasted, not what the wall clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from server.errors import N_, Invalid

BASES = ("session", "active")
# the price fields a category may override (any absent one is the default category's)
PRICE_FIELDS = ("basis", "per_minute_cents", "round_minutes", "session_cents", "minimum_cents",
                "min_balance_cents", "per_kwh_cents")
TARIFF_FIELDS = ("valid_from", *PRICE_FIELDS, "categories")
MAX_CENTS = 10_000_000  # 100 000.00 per minute or per session is surely a typo
MAX_ROUND = 24 * 60


@dataclass(frozen=True)
class Price:
    """One session's charge before any manager override."""

    cents: int
    minutes: int
    category: str | None


def _cents(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(N_("%(field)s must be a whole number of cents"),
                      {field: N_("a whole number of cents (no fraction)")}, {"field": field})
    if value < 0 or value > MAX_CENTS:
        raise Invalid(N_("%(field)s must be between 0 and %(max)s cents"),
                      {field: N_("0 or more cents")}, {"field": field, "max": MAX_CENTS})
    return value


def _prices(raw: dict[str, Any], where: str, *, defaults: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        field = f"{where}.{key}"
        if key == "basis":
            if value not in BASES:
                raise Invalid(N_("%(field)s must be session or active"),
                              {field: N_("session or active")}, {"field": field})
            out[key] = value
        elif key == "round_minutes":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROUND:
                raise Invalid(N_("%(field)s must be a whole number of minutes, at least 1"),
                              {field: N_("1 or more whole minutes")}, {"field": field})
            out[key] = value
        else:
            out[key] = _cents(value, field)
    if defaults:
        out.setdefault("basis", "session")
        out.setdefault("round_minutes", 1)
        for key in ("per_minute_cents", "session_cents", "minimum_cents"):
            out.setdefault(key, 0)
    return out


def validate_tariff(raw: Any, field: str = "tariff") -> dict[str, Any]:
    """The stored form of a contract tariff object (without `valid_from`); Invalid names the
    first bad field as `tariff.<key>` (`tariff.categories.<tag>.<key>` inside a category)."""
    if not isinstance(raw, dict):
        raise Invalid(N_("%(field)s must be an object or null"), {field: N_("an object or null")},
                      {"field": field})
    unknown = sorted(set(raw) - set(TARIFF_FIELDS))
    if unknown:
        raise Invalid(N_("unknown fields"), {f"{field}.{k}": N_("unknown field") for k in unknown})
    flat = {k: v for k, v in raw.items() if k in PRICE_FIELDS}
    spec = _prices(flat, field, defaults=True)
    cats = raw.get("categories")
    if cats is not None:
        if not isinstance(cats, dict):
            raise Invalid(N_("%(field)s must be an object"), {f"{field}.categories":
                          N_("an object: member tag -> prices")}, {"field": f"{field}.categories"})
        out: dict[str, Any] = {}
        for tag, prices in cats.items():
            where = f"{field}.categories.{tag}"
            if not isinstance(tag, str) or not tag.strip() or len(tag) > 64:
                raise Invalid(N_("a category is named by a member tag"),
                              {f"{field}.categories": N_("member tags (1 to 64 characters)")})
            if not isinstance(prices, dict):
                raise Invalid(N_("%(field)s must be an object"), {where: N_("an object")},
                              {"field": where})
            bad = sorted(set(prices) - set(PRICE_FIELDS))
            if bad:
                raise Invalid(N_("unknown fields"), {f"{where}.{k}": N_("unknown field")
                                                     for k in bad})
            out[tag.strip()] = _prices(prices, where, defaults=False)
        if out:
            spec["categories"] = out
    return spec


def _effective(spec: dict[str, Any], category: str | None) -> dict[str, Any]:
    base = {k: v for k, v in spec.items() if k != "categories"}
    if category is not None:
        base.update(spec.get("categories", {}).get(category, {}))
    return base


def matching_categories(spec: dict[str, Any], tags: list[str] | None) -> list[str | None]:
    """The categories a member with these tags may be charged under; the default when none."""
    mine = {t.strip().casefold() for t in tags or [] if isinstance(t, str)}
    found: list[str | None] = [c for c in spec.get("categories", {}) if c.casefold() in mine]
    return found or [None]


def _billed_minutes(seconds: float, round_minutes: int) -> int:
    """Minutes billed for `seconds`: whole started blocks of `round_minutes` (0 s: 0 minutes).

    Durations come with millisecond precision; they are read as decimals so that 600.000 s is
    exactly ten minutes and not a float a hair above."""
    ms = Decimal(repr(max(float(seconds), 0.0))).quantize(Decimal("0.001"))
    blocks = (ms / (Decimal(60) * round_minutes)).to_integral_value(rounding=ROUND_CEILING)
    return int(blocks) * round_minutes


def price_with(prices: dict[str, Any], duration_s: float, active_s: float | None,
               energy_wh: float | None) -> tuple[int, int]:
    """(cents, minutes billed) under one set of effective prices."""
    seconds = (active_s or 0.0) if prices.get("basis") == "active" else duration_s
    minutes = _billed_minutes(seconds, int(prices.get("round_minutes") or 1))
    cents = int(prices.get("session_cents") or 0) + minutes * int(prices.get("per_minute_cents") or 0)
    per_kwh = prices.get("per_kwh_cents")
    if per_kwh and energy_wh is not None and energy_wh > 0:
        energy = Decimal(repr(float(energy_wh))) * int(per_kwh) / 1000
        cents += int(energy.to_integral_value(rounding=ROUND_HALF_UP))
    return max(cents, int(prices.get("minimum_cents") or 0)), minutes


def price(spec: dict[str, Any], tags: list[str] | None, duration_s: float,
          active_s: float | None = None, energy_wh: float | None = None) -> Price:
    """A session's price: of the member's categories, the one that costs them least."""
    best: Price | None = None
    for category in matching_categories(spec, tags):
        cents, minutes = price_with(_effective(spec, category), duration_s, active_s, energy_wh)
        if best is None or cents < best.cents:
            best = Price(cents, minutes, category)
    assert best is not None
    return best


def min_balance(spec: dict[str, Any] | None, tags: list[str] | None) -> int | None:
    """The balance a member needs to start (None: no minimum); the lowest of their categories."""
    if not spec:
        return None
    values = [_effective(spec, c).get("min_balance_cents") for c in matching_categories(spec, tags)]
    set_values = [int(v) for v in values if v is not None]
    return min(set_values) if set_values else None


def thresholds(spec: dict[str, Any] | None) -> set[int]:
    """Every minimum balance a tariff can ask for (lists change when a balance crosses one)."""
    if not spec:
        return set()
    out = {spec["min_balance_cents"]} if spec.get("min_balance_cents") is not None else set()
    for prices in spec.get("categories", {}).values():
        if prices.get("min_balance_cents") is not None:
            out.add(prices["min_balance_cents"])
    return out


__all__ = ["BASES", "PRICE_FIELDS", "Price", "matching_categories", "min_balance", "price",
           "price_with", "thresholds", "validate_tariff"]
