"""An operator's mistake ends in one line that names the cause and a sysexits code, never in a
traceback or a "configuration is valid" for a configuration that collects nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from collector.cli import main

REPO = Path(__file__).resolve().parents[2]
EX_NOINPUT, EX_CONFIG = 66, 78

TENANT_AND_SOURCE = """
tenants:
  demo: {name: Demo}
sources:
  syslog_tcp: {type: syslog_tcp, address: "127.0.0.1:5514", tenant: demo}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


# -- files named on the command line ---------------------------------------------------------

def test_process_of_a_missing_file_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(capsys, "process", "-c", str(REPO / "conf.d"), "--source",
                           "syslog_tcp", "/nonexistent")
    assert (code, err) == (EX_NOINPUT, ["vigil: cannot read /nonexistent: no such file or "
                                        "directory"])


# -- one typo, one error ---------------------------------------------------------------------

def shipped_copy(tmp_path: Path) -> Path:
    conf = tmp_path / "conf.d"
    shutil.copytree(REPO / "conf.d", conf, symlinks=True)
    return conf


def references_to(conf: Path, declared: set[str]) -> int:
    """How many test cases of the conf.d name one of `declared` as their source."""
    count = 0
    for path in conf.glob("*.yaml"):
        tests = (yaml.safe_load(path.read_text()) or {}).get("tests") or {}
        count += sum(1 for case in tests.values() if case.get("source") in declared)
    return count


def test_a_missing_colon_is_one_error_at_its_true_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = shipped_copy(tmp_path)
    sources = conf / "20-sources.yaml"
    declared = set(yaml.safe_load(sources.read_text())["sources"])
    # Every test case naming one of its sources, and "no sources configured" (the other files
    # declare none) follow from the missing colon.
    followers = references_to(conf, declared) + 1
    assert followers > 50  # the shipped tests name the example sources
    lines = sources.read_text().splitlines(keepends=True)
    line_no = next(i for i, line in enumerate(lines, 1) if line == "  syslog_tcp:\n")
    lines[line_no - 1] = "  syslog_tcp\n"
    sources.write_text("".join(lines))

    code, err, out = run_cli(capsys, "validate", "-c", str(conf))

    assert code == EX_CONFIG
    assert out == ""
    assert err == [
        f"{sources}:{line_no}:3: YAML syntax error: could not find expected ':' after "
        "'syslog_tcp'",
        f"  and {followers} errors that follow from it",
        f"1 error(s) in {conf} (and {followers} that follow from them)",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    # The scanner reads past the key to the next line before it gives up.
    ("sources:\n  a:\n    type: x\n\n  syslog_tcp\n    type: y\n  b:\n    type: z\n",
     "5:3: YAML syntax error: could not find expected ':' after 'syslog_tcp'"),
    # As the only entry, key and next line read as one scalar that meets a ':' a line later.
    ("sources:\n  syslog_tcp\n    type: syslog_tcp\n    address: x\n",
     "2:3: YAML syntax error: could not find expected ':' after 'syslog_tcp'"),
    # An unclosed quote fails at the end of the file; the quote is what to fix.
    ('tenants:\n  demo:\n    name: "Demo\n  acme:\n    name: Acme\n',
     "3:11: YAML syntax error: found unexpected end of stream in the quoted string that starts "
     "here"),
    # A value holding ': ' is wrong on its own line.
    ("tenants:\n  demo:\n    name: a: b\n", "3:12: YAML syntax error: mapping values are not "
     "allowed here"),
])
def test_yaml_syntax_errors_are_reported_where_the_fix_goes(tmp_path: Path, text: str,
                                                            expected: str) -> None:
    from collector.config import load_config
    from core.errors import ConfigErrors

    path = write(tmp_path, "10-a.yaml", text)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    assert str(info.value.errors[0]) == f"{path}:{expected}"


def test_references_to_an_invalid_entry_follow_from_its_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "conf.d"
    write(conf, "10-a.yaml", TENANT_AND_SOURCE.replace("tenant: demo}", "tenant: demo, "
                                                        "max_conections: 5}"))
    path = write(conf, "20-tests.yaml", """
    tests:
      one: {source: syslog_tcp, input: "a", expect: {fields: {message: "a"}}}
      two: {source: syslog_tcp, input: "b", expect: {fields: {message: "b"}}}
      three: {source: nosuch, input: "c", expect: {fields: {message: "c"}}}
    """)
    code, err, _ = run_cli(capsys, "validate", "-c", str(conf))
    assert code == EX_CONFIG
    assert err == [
        f"{conf / '10-a.yaml'}:4:75: sources.syslog_tcp.max_conections: unknown key "
        "'max_conections' (did you mean 'max_connections'?)",
        "  and 2 errors that follow from it",
        f"{path}:4:19: tests.three.source: unknown source 'nosuch'",
        f"2 error(s) in {conf} (and 2 that follow from them)",
    ]


# -- a configuration that would collect nothing ---------------------------------------------

def test_an_empty_directory_is_not_a_valid_configuration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = run_cli(capsys, "validate", "-c", str(tmp_path))
    assert (code, out) == (EX_NOINPUT, "")
    assert err == [f"{tmp_path}: no configuration files (*.yaml) in this directory",
                   f"1 error(s) in {tmp_path}"]


def test_the_parent_of_conf_d_points_at_it(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "conf.d", "10-a.yaml", TENANT_AND_SOURCE)
    code, err, _ = run_cli(capsys, "validate", "-c", str(tmp_path))
    assert code == EX_NOINPUT
    assert err[0] == (f"{tmp_path}: no configuration files (*.yaml) in this directory; "
                      f"did you mean -c {tmp_path / 'conf.d'}?")


def test_no_sources_is_refused_unless_allowed(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "10-a.yaml", "tenants:\n  demo: {name: Demo}\n")
    code, err, _ = run_cli(capsys, "validate", "-c", str(tmp_path))
    assert code == EX_CONFIG
    assert err == [f"{tmp_path}: no sources configured: this daemon would collect nothing; "
                   "declare sources, or set vigil.allow_empty: true on a host that collects "
                   "nothing on purpose",
                   f"1 error(s) in {tmp_path}"]
    write(tmp_path, "00-vigil.yaml", "vigil:\n  allow_empty: true\n")
    code, _, out = run_cli(capsys, "validate", "-c", str(tmp_path))
    assert code == 0
    assert out.startswith(f"{tmp_path}: configuration is valid (1 tenants, 0 sources")


def test_no_tenants_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "10-a.yaml", """
    sources:
      s: {type: syslog_udp, address: "127.0.0.1:5514", routes: []}
    """)
    code, err, _ = run_cli(capsys, "validate", "-c", str(tmp_path))
    assert code == EX_CONFIG
    assert (f"{tmp_path}: no tenants configured: every event would be quarantined; declare "
            "tenants, or set vigil.allow_empty: true on a host that collects nothing on purpose"
            ) in err


# -- files the daemon's user cannot read ------------------------------------------------------

@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="vigil-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """`vigil ARGV` as user nobody, as a service's unprivileged user would run it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run as another user")
    return subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "collector.cli", *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def validate_as_nobody(conf: Path) -> subprocess.CompletedProcess[str]:
    return as_nobody("validate", "-c", str(conf))


def test_an_unreadable_file_says_who_cannot_read_it(world_dir: Path) -> None:
    write(world_dir, "10-a.yaml", TENANT_AND_SOURCE).chmod(0o600)
    result = validate_as_nobody(world_dir)
    assert result.returncode == EX_NOINPUT
    assert result.stderr.splitlines() == [
        f"{world_dir / '10-a.yaml'}: cannot read: permission denied (owner root:root, mode "
        "0600; this process runs as nobody)",
        f"1 error(s) in {world_dir}"]


def test_an_unreadable_directory_says_who_cannot_list_it(world_dir: Path) -> None:
    conf = world_dir / "conf.d"
    write(conf, "10-a.yaml", TENANT_AND_SOURCE)
    conf.chmod(0o700)
    result = validate_as_nobody(conf)
    assert result.returncode == EX_NOINPUT
    assert result.stderr.splitlines() == [
        f"{conf}: cannot list the directory: permission denied (owner root:root, mode 0700; "
        "this process runs as nobody)",
        f"1 error(s) in {conf}"]


# -- arguments that cannot be right ----------------------------------------------------------

def test_an_unknown_tenant_lists_the_configured_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(capsys, "tenants", "show", "-c", str(REPO / "conf.d"), "dmeo")
    assert (code, err) == (64, ["vigil: unknown tenant 'dmeo' (did you mean 'demo'?); "
                                "configured tenants: demo"])


def test_a_bad_since_names_the_option(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = run_cli(capsys, "rules", "backtest", "-c", str(REPO / "conf.d"),
                           "--data-dir", str(tmp_path), "--tenant", "demo", "--since",
                           "yesterday", str(REPO / "rules" / "library"))
    assert (code, err) == (64, ["vigil: --since: 'yesterday' is not a duration like 15m, 4h, "
                                "1d or 1h30m"])


def test_a_locked_database_is_an_operator_error_not_a_bug() -> None:
    import sqlite3

    from core.errors import explain

    problem = explain(sqlite3.OperationalError("database is locked"))
    assert problem is not None and problem.exit_code == 75
    assert str(problem) == ("database: database is locked; is another vigil using it? check "
                            "the data directory's owner and try again")
    assert explain(KeyError("a bug")) is None


def test_help_starts_with_what_vigil_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    description = capsys.readouterr().out.split("\n\n")[1]
    assert description.startswith("Vigil, a multi-tenant security log collector")
    assert "collector/commands" not in description


def test_a_data_dir_the_daemon_cannot_create_says_whose_it_is(world_dir: Path) -> None:
    conf = world_dir / "conf.d"
    write(conf, "10-a.yaml", TENANT_AND_SOURCE.replace("5514", "0"))
    conf.chmod(0o755)
    (world_dir / "data").mkdir(mode=0o700)
    result = as_nobody("run", "-c", str(conf), "--data-dir", str(world_dir / "data" / "vigil"))
    assert result.returncode == 77  # EX_NOPERM
    assert result.stderr.splitlines()[-1] == (
        f"vigil: {world_dir / 'data' / 'vigil' / 'journal'}: permission denied "
        f"({world_dir / 'data'}: owner root:root, mode 0700; this process runs as nobody)")
