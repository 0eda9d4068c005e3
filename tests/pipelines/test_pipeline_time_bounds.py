"""Every shipped pipeline handles adversarial lines in bounded time: a sender controls every
byte, and a regular expression that backtracks exponentially (found by the hostile-input test:
`^\\S+(?:,? +\\S+)*...` took minutes on a JSON body of 25 `"a": "b", ` pairs) would freeze
the daemon for every tenant. The lines go through each source's pipelines in a child process
(Python's `re` cannot be interrupted), which reports the slowest line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from support.daemon import REPO

# Shapes whose separators make ambiguous patterns backtrack; ~30-60 repetitions are enough to
# take an exponential pattern past any bound while a linear one stays in microseconds.
BODIES = [
    ", ".join(["a"] * 60),
    '{"a": "b", ' * 40,
    "a " * 80,
    "a=b " * 60,
    'a="b c" ' * 40,
    "a:b " * 60,
    "," * 200,
    "%" * 80,
    "[" * 80 + "]" * 80,
    "1.2.3.4, " * 40 + "- - [",
    "x" * 200_000,
    "\\" * 80,
    '"' * 80,
    "\t" * 80,
    "IN= OUT= " * 40,
    "(pam_unix) " * 40,
]
PREFIXES = [
    "<13>Nov 22 10:00:00 host {app}: ",
    "<13>Nov 22 10:00:00 host {app}[7]: ",
]
APPS = ["sshd", "sudo", "su", "pam", "sshd(pam_unix)", "kernel", "named", "ftpd", "vsftpd",
        "auditd", "audispd", "sysmon", "cron", "nginx", "apache2", "httpd", "squid", "app",
        "crond", "systemd", "gdm-password]"]
DEVICE_HEADS = [
    "<189>date=2020-04-23 time=12:11:51 devid=\"x\" logid=\"1\" type=\"traffic\" ",
    "<14>1,2024/01/01 00:00:00,001,TRAFFIC,",
    "<14>1,2024/01/01 00:00:00,001,THREAT,",
    "<166>%ASA-6-302013: ",
    "<166>%FTD-6-430003: ",
    "<189>123: *Mar  1 00:00:00: %SYS-5-CONFIG_I: ",
    "<13>Nov 22 10:00:00 host ",
]

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from collector.config import load_config
    from collector.offline import OfflineRun
    conf = Path(sys.argv[1])
    lines = json.loads(sys.stdin.read())
    run = OfflineRun(load_config(conf), conf)
    slowest = (0.0, "", "")
    try:
        for source, line in lines:
            print(json.dumps([source, line[:120]]), file=sys.stderr, flush=True)
            started = time.perf_counter()
            run.process_lines(source, [line.encode()])
            spent = time.perf_counter() - started
            slowest = max(slowest, (spent, source, line[:120]))
    finally:
        run.close()
    print(json.dumps(slowest))
""")


def adversarial_lines() -> list[tuple[str, str]]:
    lines = []
    for body in BODIES:
        for prefix in PREFIXES:
            lines += [("syslog_tcp", prefix.format(app=app) + body) for app in APPS]
        lines += [("syslog_tcp", head + body) for head in DEVICE_HEADS]
        lines += [("nginx_access_lines", body), ("tcp_json", json.dumps({"message": body})),
                  ("tcp_json", body)]
    return lines


def test_no_shipped_pipeline_backtracks_on_adversarial_lines() -> None:
    lines = adversarial_lines()
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "conf.d")],
                              input=json.dumps(lines), capture_output=True, text=True,
                              timeout=60, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        stuck = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise AssertionError(f"a shipped pipeline did not finish this line: {stuck}") from None
    assert done.returncode == 0, done.stderr[-3000:]
    spent, source, line = json.loads(done.stdout.strip().splitlines()[-1])
    # Generous for a loaded CI machine; exponential backtracking takes seconds to hours here.
    assert spent < 1.0, f"{spent:.2f} s for one line from {source}: {line!r}"
