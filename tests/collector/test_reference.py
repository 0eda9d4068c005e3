"""docs/configuration.md is generated from the config models and must not drift from them."""

from pathlib import Path

from collector.config.reference import render

REPO = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    current = (REPO / "docs" / "configuration.md").read_text()
    assert current == render(), "docs/configuration.md is stale: run `make docs`"


def test_every_required_key_is_marked() -> None:
    assert "| `address` | str | **required** | HOST:PORT to listen on |" in render()
