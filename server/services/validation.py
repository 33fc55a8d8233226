"""Input checks shared by every service: each raises one Invalid that names the field."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol import ProtocolError, check_policy, is_slug, normalize_uid
from server.errors import N_, Invalid

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def text_field(value: Any, field: str, *, max_len: int = 200, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(N_("%(field)s is required"), {field: N_("required")}, {"field": field})
        return None
    if not isinstance(value, str):
        raise Invalid(N_("%(field)s must be text"), {field: N_("must be text")}, {"field": field})
    value = value.strip()
    if len(value) > max_len:
        raise Invalid(N_("%(field)s is too long"), {field: f"at most {max_len} characters"},
                      {"field": field})
    return value


def slug_field(value: Any, field: str = "slug") -> str:
    if not is_slug(value):
        raise Invalid(N_("%(field)s %(value)r is not a slug"),
                      {field: N_("lowercase letters, digits and '-', 1-63 characters, "
                                 "starting with a letter or digit")},
                      {"field": field, "value": value})
    return str(value)


def email_field(value: Any, field: str = "email") -> str | None:
    text = text_field(value, field, max_len=254, required=False)
    if text is None:
        return None
    if not EMAIL_RE.match(text):
        raise Invalid(N_("%(field)s %(value)r is not an e-mail address"),
                      {field: N_("not an e-mail address")}, {"field": field, "value": text})
    return text.lower()


def tags_field(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [t for t in re.split(r"[;,]", value)]
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise Invalid(N_("tags must be a list of text"), {"tags": N_("must be a list of text")})
    out: list[str] = []
    for t in value:
        t = t.strip()
        if t and t not in out:
            if len(t) > 64:
                raise Invalid(N_("a tag is too long"), {"tags": N_("each tag at most 64 characters")})
            out.append(t)
    return out


def date_field(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Invalid(N_("%(field)s must be a date (YYYY-MM-DD)"),
                  {field: N_("must be a date (YYYY-MM-DD)")}, {"field": field})


def datetime_field(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC)
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        except ValueError:
            pass
    raise Invalid(N_("%(field)s must be a date or an RFC 3339 time"),
                  {field: N_("must be a date or an RFC 3339 time")}, {"field": field})


def timezone_field(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(N_("timezone must be an IANA zone name"),
                      {"timezone": N_("e.g. Europe/Paris")})
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(N_("unknown time zone %(value)r"),
                      {"timezone": N_("unknown time zone (e.g. Europe/Paris)")},
                      {"value": value}) from None
    return value


def validate_policy(policy: Any) -> dict[str, Any]:
    """Check a machine policy; Invalid names each bad key as `policy.<key>`."""
    if policy is None:
        return {}
    if not isinstance(policy, dict):
        raise Invalid(N_("policy must be an object"), {"policy": N_("must be an object")})
    fields: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in policy.items():
        try:
            out.update(check_policy({key: value}))
        except ProtocolError as exc:
            fields[f"policy.{key}"] = str(exc).removeprefix("policy: ")
    if fields:
        raise Invalid(N_("invalid policy"), fields)
    return out


def uid_field(value: Any, field: str = "uid") -> str:
    try:
        return normalize_uid(value)
    except ProtocolError as exc:
        raise Invalid(str(exc), {field: N_("8, 14 or 20 hex digits (a 4-, 7- or 10-byte UID)")}) from None


def enum_field(enum_cls: Any, value: Any, field: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise Invalid(N_("%(field)s %(value)r is not one of %(choices)s"),
                      {field: f"one of {choices}"},
                      {"field": field, "value": value, "choices": choices}) from None
