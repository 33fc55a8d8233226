"""Property test: any TOML document gives a config or well-formed problem lines, never a crash."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_config import validate_text
from firmware_config.schema import SCHEMA

NAMES = sorted({name for key in SCHEMA.values() for name in key.keys} | set(SCHEMA) | {"junk"})
LINE = re.compile(r"^n\.toml:\d+: [\w.\-]+: .+$")

scalars = st.one_of(
    st.integers(-5, 40), st.booleans(), st.text(max_size=6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["mfrc522", "keyboard", "sim", "tap", "present", "hex", "when_idle",
                     "mqtt://h:1", "mqtts://h", "http://x", "lab", "laser-1", "5"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
    max_leaves=8,
)
documents = st.dictionaries(st.sampled_from(NAMES), values, max_size=9)


def emit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(emit(v) for v in value) + "]"
    return "{ " + ", ".join(f"{k} = {emit(v)}" for k, v in value.items()) + " }"


def to_toml(doc: dict[str, Any]) -> str:
    lines = [f"{k} = {emit(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {emit(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def check(text: str) -> None:
    cfg, report = validate_text(text, "n.toml", {})
    if cfg is None:
        assert report.problems
        for line in report.problems:
            assert LINE.match(line), line
            assert int(line.split(":")[1]) <= max(1, text.count("\n") + 1)
    else:
        assert report.problems == []


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_document_gives_config_or_problem_lines(doc: dict[str, Any]) -> None:
    check(to_toml(doc))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_config_or_problem_lines(text: str) -> None:
    check(text)
