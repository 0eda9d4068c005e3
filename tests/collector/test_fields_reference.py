"""docs/fields.md is generated from the shipped pipelines and must not drift from them."""

from pathlib import Path

from collector.config.fields_reference import render

REPO = Path(__file__).resolve().parents[2]


def test_field_reference_is_current() -> None:
    current = (REPO / "docs" / "fields.md").read_text()
    assert current == render(REPO / "conf.d"), (
        "docs/fields.md is stale: run `python -m collector.config.fields_reference "
        "> docs/fields.md`")


def test_field_reference_names_the_vocabulary_and_each_dataset() -> None:
    text = render(REPO / "conf.d")
    assert "| `denied` | the device denied, dropped or reset it" in text
    assert "| `fortinet.firewall` | `fortinet_fortigate` | Fortinet | FortiGate | firewall |" \
        in text
    assert "### `okta.system`" in text and "| `okta.securityContext.isProxy` | bool |" in text
    assert "ecs-using-the-categorization-fields.html" in text
