"""docs/configuration.md is generated from the schema and must match it."""

from __future__ import annotations

from firmware_config import docgen
from firmware_config.schema import SCHEMA


def test_committed_reference_matches_the_schema() -> None:
    assert docgen.DOC_PATH.read_text(encoding="utf-8") == docgen.render(), (
        "docs/configuration.md is stale: run `python -m firmware_config.docgen`")
    assert docgen.main(["--check"]) == 0


def test_every_key_is_documented() -> None:
    text = docgen.render()

    def walk(keys: dict, prefix: str) -> None:  # type: ignore[type-arg]
        for name, key in keys.items():
            if prefix or key.kind != "table":
                assert f"| `{prefix}{name}` |" in text
            else:
                assert f"## [{name}]" in text
            assert key.help, f"{prefix}{name} has no description"
            walk(key.keys, f"{prefix}{name}.")

    walk(SCHEMA, "")
