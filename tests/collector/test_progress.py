"""Progress bars on long CLI work (issue 18): `rules backtest`, `dlq replay` and `journal fsck`
draw count, rate and ETA on stderr on a terminal (or with --progress); piped they print no
escape codes, and each ends with its summary line either way. Run as subprocesses, a
pseudo-terminal where the terminal matters."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from support.daemon import REPO

from collector.config.models import QueueConfig
from collector.journal import Journal

CLI = [sys.executable, "-m", "collector.cli"]
ESCAPE = "\x1b["
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def run_on_terminal(*args: str) -> tuple[int, str, str]:
    """stderr on a pseudo-terminal (stdout piped): exit code, stdout, what the terminal got
    (escape codes found, then taken out)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=follower,
                            env={**os.environ, "COLUMNS": "120"})
    os.close(follower)
    screen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    text = screen.decode(errors="replace")
    assert ESCAPE in text, text
    return proc.wait(60), out, CONTROL.sub("", text)


def write_lake(data: Path, rows: int) -> None:
    """`rows` sshd events of tenant demo in the lake, two of them root password logins."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    part = data / "lake" / "linux.auth" / "tenant=demo" / f"date={now:%Y-%m-%d}" / "hour=00"
    part.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT ?::TIMESTAMPTZ + i * INTERVAL 1 SECOND AS \"@timestamp\", "
        "i AS \"vigil.offset\", 'linux.auth' AS \"vigil.dataset\", 'sshd' AS message, "
        "'ssh_login' AS \"event.action\", "
        "CASE WHEN i % 1000 = 7 THEN 'success' ELSE 'failure' END AS \"event.outcome\", "
        "'root' AS \"user.name\", 'password' AS \"system.auth.ssh.method\", "
        "'sshd' AS \"log.syslog.appname\", 'web-1' AS \"host.name\" "
        f"FROM range({rows}) t(i)) TO '{part / 'x-0-1.parquet'}' (FORMAT parquet)",
        [now - timedelta(hours=1)])
    con.close()


def test_backtest_summary_piped_and_bar_on_a_terminal(tmp_path: Path) -> None:
    write_lake(tmp_path, 2000)
    args = ("rules", "backtest", "-c", "conf.d", "--data-dir", str(tmp_path), "--tenant", "demo",
            "--since", "1d", "examples/new-rule.yml")
    piped = run(*args)
    assert piped.returncode == 0, piped.stderr
    assert ESCAPE not in piped.stderr + piped.stdout
    last = piped.stderr.strip().splitlines()[-1]
    assert last.startswith("backtest: 2000 event(s) of tenant demo in "), last
    assert last.endswith("1 rule(s), 2 match(es), 1 alert(s)"), last
    code, out, screen = run_on_terminal(*args)
    assert code == 0, screen
    assert '"total_alerts":1' in out.splitlines()[-1]
    assert "2000/2000" in screen and "events/s" in screen and "ETA" in screen
    assert "backtest: 2000 event(s)" in screen


async def _journal(directory: Path, events: int) -> None:
    journal = Journal(directory, QueueConfig(), max_events=200_000)
    for n in range(events // 100):
        journal.append("demo", [{"message": f"line {n}-{i}"} for i in range(100)])
    await journal.sync()
    await journal.aclose()


def test_fsck_summary_piped_and_bar_on_a_terminal(tmp_path: Path) -> None:
    asyncio.run(_journal(tmp_path / "journal", 2000))
    args = ("journal", "fsck", "--data-dir", str(tmp_path))
    piped = run(*args)
    assert piped.returncode == 0, piped.stderr
    assert ESCAPE not in piped.stderr + piped.stdout and piped.stderr == ""
    assert re.fullmatch(r".*journal: 1 partition\(s\), 1 segment\(s\) \([0-9.]+KiB\), no damage",
                        piped.stdout.strip()), piped.stdout
    size = sum(p.stat().st_size for p in (tmp_path / "journal" / "demo").glob("*.seg"))
    code, out, screen = run_on_terminal(*args)
    assert code == 0
    assert out.strip().endswith("no damage")
    assert f"{size}/{size}" in screen and "B/s" in screen
    forced = run(*args, "--progress")
    assert f"{size}/{size}" in forced.stderr
    assert run(*args, "--no-progress").stderr == ""


def test_dlq_replay_without_a_daemon_says_how_far_it_got(tmp_path: Path) -> None:
    area = tmp_path / "dlq" / "tenant=demo" / "date=2026-12-06"
    area.mkdir(parents=True)
    (area / "linux_auth-1.jsonl").write_text(
        "".join('{"vigil.tenant": "demo", "pipeline": "p", "step": "s", "error": "e", '
                f'"event": {{"message": "m{i}"}}}}\n' for i in range(3)))
    result = run("dlq", "replay", "-c", "conf.d", "--data-dir", str(tmp_path), "--wait", "0.5",
                 "--progress")
    assert result.returncode == 75
    assert "1 file(s) marked for replay (3 event(s)); waiting for the daemon" in result.stdout
    drawn = CONTROL.sub("", result.stderr)
    assert "replay" in drawn and "0/3" in drawn and "ETA" in drawn
    assert drawn.strip().splitlines()[-1].startswith(
        "replayed 0 of 1 file(s), 0 event(s); 1 file(s) still waiting")
