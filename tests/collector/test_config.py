"""conf.d loading: merged sections, strict models, every error with FILE:LINE:COL: path: msg."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector.cli import EX_CONFIG, main
from collector.config import load_config
from core.errors import ConfigErrors


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


VALID = """
vigil:
  control:
    address: 127.0.0.1:9580
tenants:
  demo:
    name: Demo
sources:
  syslog_tcp:
    type: syslog_tcp
    address: 127.0.0.1:5514
    tenant: demo
sinks:
  lake:
    type: parquet_lake
"""


def errors_of(conf_dir: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_config(conf_dir)
    return [str(e) for e in info.value.errors]


def test_valid_config_merges_files(tmp_path: Path) -> None:
    write(tmp_path, "00-a.yaml", VALID)
    write(tmp_path, "10-b.yaml", """
    tenants:
      acme:
        name: ACME
    vigil:
      limits:
        queue_max_events: 10
    """)
    config = load_config(tmp_path)
    assert set(config.tenants) == {"demo", "acme"}
    assert config.sources["syslog_tcp"].tenant == "demo"
    assert config.settings.limits.queue_max_events == 10
    assert config.settings.control.address == "127.0.0.1:9580"


def test_example_conf_d_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "conf.d")
    assert "demo" in config.tenants
    assert config.sources["syslog_tcp"].tenant == "demo"


def test_unknown_type_unknown_key_bad_value_all_reported(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, "20-sources.yaml", """
    tenants:
      demo:
        name: Demo
    sources:
      a:
        type: syslog_tpc
        address: 127.0.0.1:1
      b:
        type: syslog_tcp
        address: 127.0.0.1:2
        tenant: demo
        max_mesage_bytes: 10
      c:
        type: syslog_tcp
        address: 127.0.0.1:notaport
        tenant: demo
    """)
    assert main(["validate", "-c", str(tmp_path)]) == EX_CONFIG
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"{path}:6:11: sources.a.type: unknown source type 'syslog_tpc' "
                      "(did you mean 'syslog_tcp'?); valid types: "
                      + err[0].split("valid types: ")[1])
    assert "syslog_tcp" in err[0].split("valid types: ")[1]
    assert err[1] == (f"{path}:12:5: sources.b.max_mesage_bytes: unknown key 'max_mesage_bytes' "
                      "(did you mean 'max_message_bytes'?)")
    assert err[2] == (f"{path}:15:14: sources.c.address: "
                      "expected HOST:PORT, got '127.0.0.1:notaport'")
    assert err[3] == f"3 error(s) in {tmp_path}"


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    write(tmp_path, "00-a.yaml", VALID)
    second = write(tmp_path, "10-b.yaml", """
    tenants:
      demo:
        name: Again
    """)
    assert errors_of(tmp_path) == [
        f"{second}:2:3: tenants.demo: duplicate id, first declared at {tmp_path / '00-a.yaml'}:5:3"
    ]


def test_unknown_tenant_and_bad_tenant_id(tmp_path: Path) -> None:
    path = write(tmp_path, "00-a.yaml", """
    tenants:
      Bad/Tenant:
        name: x
      demo:
        name: Demo
    sources:
      s:
        type: syslog_tcp
        address: 127.0.0.1:1
        tenant: dmo
    """)
    assert errors_of(tmp_path) == [
        f"{path}:2:3: tenants.Bad/Tenant: tenant id 'Bad/Tenant' is not a slug matching "
        "[a-z0-9][a-z0-9_-]{0,62}",
        f"{path}:10:13: sources.s.tenant: unknown tenant 'dmo' (did you mean 'demo'?)",
    ]


def test_nested_unknown_key_and_missing_key(tmp_path: Path) -> None:
    path = write(tmp_path, "00-a.yaml", """
    vigil:
      control:
        adress: 127.0.0.1:1
    sinks:
      lake:
        type: parquet_lake
        flush:
          max_rows: -1
    sources:
      s:
        type: syslog_tcp
    """)
    assert errors_of(tmp_path) == [
        f"{path}:3:5: vigil.control.adress: unknown key 'adress' (did you mean 'address'?)",
        f"{path}:8:17: sinks.lake.flush.max_rows: Input should be greater than 0",
        f"{path}:10:3: sources.s.address: required key is missing",
    ]


def test_unknown_section_and_yaml_syntax_error(tmp_path: Path) -> None:
    a = write(tmp_path, "00-a.yaml", "tenant:\n  demo: {name: x}\n")
    b = write(tmp_path, "10-b.yaml", "sources: [unclosed\n")
    errors = errors_of(tmp_path)
    assert errors[0].startswith(
        f"{a}:1:1: tenant: unknown section 'tenant' (did you mean 'tenants'?)")
    # Where the bracket that was never closed opened, not the end of the file.
    assert errors[1] == (f"{b}:1:10: YAML syntax error: expected ',' or ']', but got "
                         "'<stream end>' in the [...] that starts here")


def test_validate_ok_exit_code(tmp_path: Path, capsys) -> None:
    write(tmp_path, "00-a.yaml", VALID)
    assert main(["validate", "-c", str(tmp_path)]) == 0
    assert "configuration is valid" in capsys.readouterr().out


def test_a_source_dataset_is_a_safe_path_component(tmp_path: Path) -> None:
    path = write(tmp_path, "00-a.yaml", """
    tenants:
      demo: {name: Demo}
    sources:
      s:
        type: syslog_tcp
        address: 127.0.0.1:1
        tenant: demo
        dataset: ../../etc
    """)
    assert errors_of(tmp_path) == [
        f"{path}:8:14: sources.s.dataset: dataset '../../etc' must match "
        "[a-z0-9][a-z0-9_.-]{0,62}"]
