"""Where the CLI looks when -c / --data-dir are not given: $VIGIL_CONF_DIR / $VIGIL_DATA_DIR,
else ./conf.d and ./var in a source checkout (what `make run` uses), else /etc/vigil/conf.d,
so the README's commands run as written from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector import cli

REPO = Path(__file__).resolve().parents[2]
needs_no_etc = pytest.mark.skipif(cli.DEFAULT_CONF_DIR.is_dir(),
                                  reason=f"{cli.DEFAULT_CONF_DIR} exists on this host: it wins")


@needs_no_etc
def test_checkout_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_CONF_DIR", raising=False)
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    monkeypatch.chdir(REPO)
    assert cli.default_dirs() == (Path("conf.d"), Path("var"))
    monkeypatch.chdir(tmp_path)  # not a checkout
    assert cli.default_dirs() == (cli.DEFAULT_CONF_DIR, None)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert cli.default_dirs() == (cli.DEFAULT_CONF_DIR, None)  # someone else's project


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("VIGIL_CONF_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    # A conf dir chosen elsewhere does not borrow the checkout's ./var.
    assert cli.default_dirs() == (tmp_path / "c", None)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "d"))
    assert cli.default_dirs() == (tmp_path / "c", tmp_path / "d")


@needs_no_etc
def test_validate_and_backtest_from_the_checkout_without_flags(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(tmp_path / "var")  # keep the checkout's ./var untouched
    run = [sys.executable, "-m", "collector.cli"]
    validated = subprocess.run([*run, "validate"], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=120)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith("conf.d: configuration is valid")
    backtest = subprocess.run([*run, "rules", "backtest", "--tenant", "demo",
                               "examples/new-rule.yml"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    assert backtest.returncode == 0, backtest.stderr
    assert f"no events of tenant demo in {tmp_path / 'var' / 'lake'}" in backtest.stderr


@needs_no_etc
def test_another_conf_dir_keeps_its_own_data_dir(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_CONF_DIR", raising=False)
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    monkeypatch.chdir(REPO)
    parser = cli.build_parser()
    args = parser.parse_args(["validate", "-c", str(tmp_path)])
    cli.checkout_data_dir(args)
    assert args.data_dir is None  # the configuration's vigil.data_dir applies
    args = parser.parse_args(["validate"])
    cli.checkout_data_dir(args)
    assert (args.config_dir, args.data_dir) == (Path("conf.d"), Path("var"))


def test_process_progress_bar_only_when_asked_or_on_a_terminal(tmp_path: Path) -> None:
    """`vigil process --progress` draws count, rate and ETA on stderr; piped, nothing extra."""
    run = [sys.executable, "-m", "collector.cli", "process", "-c", str(REPO / "conf.d"),
           "--data-dir", str(tmp_path), "--source", "syslog_tcp", "examples/auth.log"]
    plain = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.strip().splitlines() == [
        "17 line(s): 17 event(s) (linux.auth 17), 0 dead letter(s)"]
    size = (REPO / "examples" / "auth.log").stat().st_size
    shown = subprocess.run([*run, "--progress"], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0
    assert len(shown.stdout.splitlines()) == len(plain.stdout.splitlines()) == 17
    assert f"{size}/{size}" in shown.stderr and "B/s" in shown.stderr and "ETA" in shown.stderr


def test_a_closed_pipe_ends_quietly() -> None:
    """`vigil test | head -1`: no BrokenPipeError traceback, exit 141 like other tools."""
    result = subprocess.run(
        f"{sys.executable} -m collector.cli test -c conf.d | head -1", shell=True, cwd=REPO,
        capture_output=True, text=True, timeout=120, executable="/bin/bash",
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.stdout.startswith("Running ")
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
