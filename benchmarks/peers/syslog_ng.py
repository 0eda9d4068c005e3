"""syslog-ng as a benchmark peer: TCP syslog in, headers parsed, JSON lines out to a file.

It runs in the foreground with its config, pid, persist and control files in a private
directory, so it never touches the system's syslog-ng. It cannot report a port it bound as port
0, so it is given a port that was free a moment earlier.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from benchmarks.harness import accepts_connections, free_port, wait_until

CONFIG_TEMPLATE = Path(__file__).with_name("syslog-ng.conf")
# The full path: the same headers plus the bodies parsed (FortiGate pairs, sshd, sudo, nginx).
FULL_CONFIG_TEMPLATE = Path(__file__).with_name("syslog-ng-full.conf")
_CANDIDATES = ("syslog-ng", "/usr/sbin/syslog-ng", "/usr/local/sbin/syslog-ng")


def find_syslog_ng() -> str | None:
    """Path of the syslog-ng binary, or None when it is not installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def render_config(template: Path, port: int, output: Path) -> str:
    """A config template with its listening port and output file filled in."""
    return (template.read_text().replace("{{port}}", str(port))
            .replace("{{output}}", str(output)))


class SyslogNg:
    """One syslog-ng process writing what it receives to `<workdir>/out.jsonl`."""

    def __init__(self, workdir: Path, binary: str | None = None,
                 template: Path = CONFIG_TEMPLATE) -> None:
        found = binary or find_syslog_ng()
        if found is None:
            raise FileNotFoundError("syslog-ng is not installed")
        self.binary = found
        self.template = template
        self.workdir = workdir
        self.output = workdir / "out.jsonl"
        self.control = workdir / "syslog-ng.ctl"
        self.stderr_path = workdir / "syslog-ng.stderr"
        self.address = ("127.0.0.1", 0)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 20.0, attempts: int = 3) -> SyslogNg:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            port = free_port()
            self.address = ("127.0.0.1", port)
            config = self.workdir / "syslog-ng.conf"
            config.write_text(render_config(self.template, port, self.output))
            with open(self.stderr_path, "wb") as stderr:
                self.proc = subprocess.Popen(
                    [self.binary, "--foreground", "--stderr", "--no-caps",
                     f"--cfgfile={config}", f"--persist-file={self.workdir / 'persist'}",
                     f"--pidfile={self.workdir / 'syslog-ng.pid'}", f"--control={self.control}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                wait_until(self._exited_or_listening, timeout, "syslog-ng to listen",
                           interval=0.05)
            except TimeoutError:
                self.kill()
                raise
            if self.proc.poll() is None:
                # The readiness probe was an empty connection; the output file stays empty.
                return self
            if attempt == attempts - 1:
                raise RuntimeError(f"syslog-ng exited with {self.proc.returncode} at start:\n"
                                   + self.stderr())
        raise AssertionError("unreachable")

    def _exited_or_listening(self) -> bool:
        assert self.proc is not None
        return self.proc.poll() is not None or accepts_connections(self.address)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def processed(self) -> int | None:
        """Messages the source counted as processed (syslog-ng-ctl stats), if it can be asked."""
        ctl = shutil.which("syslog-ng-ctl") or shutil.which(
            str(Path(self.binary).with_name("syslog-ng-ctl")))
        if ctl is None:
            return None
        result = subprocess.run([ctl, "stats", f"--control={self.control}"],
                                capture_output=True, text=True, timeout=10, check=False)
        for line in result.stdout.splitlines():
            parts = line.split(";")
            if parts[:2] == ["source", "s_bench"] and parts[4:5] == ["processed"]:
                return int(parts[5])
        return None

    def version(self) -> str:
        result = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                                timeout=10, check=False)
        for line in result.stdout.splitlines():
            if line.startswith("Installer-Version:"):
                return line.partition(":")[2].strip()
        return result.stdout.splitlines()[0].strip() if result.stdout else "unknown"

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (syslog-ng flushes its destinations) and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("syslog-ng did not stop after SIGTERM:\n" + self.stderr()) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
