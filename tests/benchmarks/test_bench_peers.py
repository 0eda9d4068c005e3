"""The syslog-ng peer configurations are valid syslog-ng (`--syntax-only`) once filled in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks.peers.syslog_ng import (
    CONFIG_TEMPLATE,
    FULL_CONFIG_TEMPLATE,
    find_syslog_ng,
    render_config,
)


@pytest.mark.parametrize("template", [CONFIG_TEMPLATE, FULL_CONFIG_TEMPLATE],
                         ids=lambda path: path.name)
def test_peer_config_passes_syslog_ng_syntax_check(template: Path, tmp_path: Path) -> None:
    rendered = render_config(template, 5514, tmp_path / "out.jsonl")
    assert "{{" not in rendered
    binary = find_syslog_ng()
    if binary is None:
        pytest.skip("syslog-ng is not installed (apt-get install syslog-ng-core)")
    config = tmp_path / "syslog-ng.conf"
    config.write_text(rendered)
    proc = subprocess.run([binary, "--syntax-only", f"--cfgfile={config}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_full_peer_parses_the_bodies_vigil_parses() -> None:
    text = FULL_CONFIG_TEMPLATE.read_text()
    for parser in ("kv-parser(", "regexp-parser(", "date-parser("):
        assert parser in text
    for program in ('program("sshd"', 'program("sudo"', 'program("nginx"'):
        assert program in text
