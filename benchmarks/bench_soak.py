"""Soak: a real daemon under mixed load for minutes, with faults injected on a schedule.

Load: HTTP NDJSON for two tenants (every 200 recorded), TCP syslog lines with unique ids
(including SSH brute-force bursts), and hostile clients (forged provenance, deep nesting, a
gzip member bomb, slow bodies, idle connections, invalid UTF-8). Faults, in turn: SIGKILL,
SIGTERM, SIGHUP, a full disk (the data directory on a tmpfs filled to the last byte and
freed again) and a burst of hostile clients. At the end the daemon is stopped cleanly and the
lake is read with DuckDB:

- HTTP: every acknowledged id must be in the lake exactly once (`lost`, `duplicated`).
- TCP syslog has no acknowledgement: `lost` counts lines sent but absent (a SIGKILL may cost
  what sat in kernel buffers; a SIGTERM drains them), `duplicated` lines present twice.

Not part of `make test`. `python -m benchmarks.bench_soak [--seconds 600]`; the last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.crash import TOKENS, HttpLoad, TcpLoad, crash_config, lake_ids  # noqa: E402
from support.daemon import VigilProcess  # noqa: E402

from benchmarks.harness import peak_rss_mb  # noqa: E402

FAULTS = ("sigkill", "sigterm", "sighup", "disk_full", "hostile")


def mount_tmpfs(parent: Path, size: str) -> Path | None:
    """A tmpfs for the data directory (so a full disk can be made); None where not allowed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return None
    target = parent / "tmpfs"
    target.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                            capture_output=True, text=True, timeout=30)
    return target if result.returncode == 0 else None


def fill_disk(root: Path) -> Path:
    """Write a filler file until the filesystem refuses (ENOSPC); returns it for removal."""
    filler = root / "filler.bin"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
        try:  # the last, partial block
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


class Hostile:
    """Hostile clients against the daemon's current addresses; each returns quickly."""

    def __init__(self, http: str, tcp: tuple[str, int], rng: random.Random) -> None:
        self.http = http
        self.tcp = tcp
        self.rng = rng
        self.sent: Counter[str] = Counter()

    def _post(self, body: bytes, headers: dict[str, str], timeout: float = 10) -> int:
        request = urllib.request.Request(f"http://{self.http}/v1/logs", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {TOKENS['demo']}",
                                                  **headers})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return 0

    def forged_provenance(self) -> None:
        bodies = [{"vigil": {"tenant": "acme"}, "message": "forged"},
                  {"vigil": {"tenant": "x/../../../../PWNED"}, "message": "escape"},
                  {"vigil": {"tenant": ["a"]}, "message": "unhashable"},
                  {"vigil.tenant": "acme", "vigil.offset": -1, "message": "flat"}]
        self._post(b"\n".join(json.dumps(b).encode() for b in bodies), {})
        self.sent["forged_provenance"] += len(bodies)

    def deep_nesting(self) -> None:
        depth = self.rng.choice([100, 300, 5000])
        self._post(b'{"a":' * depth + b"1" + b"}" * depth, {})
        self.sent["deep_nesting"] += 1

    def gzip_bomb(self) -> None:
        member = gzip.compress(b"")
        self._post(member * 200_000, {"Content-Encoding": "gzip"}, timeout=30)
        self.sent["gzip_bomb"] += 1

    def slow_bodies(self, count: int = 64) -> None:
        sockets = []
        for _ in range(count):
            try:
                sock = socket.create_connection(_split(self.http), timeout=2)
                sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                             b"Authorization: Bearer " + TOKENS["demo"].encode() + b"\r\n\r\n{")
                sockets.append(sock)
            except OSError:
                break
        self.sent["slow_bodies"] += len(sockets)
        time.sleep(2)
        for sock in sockets:
            sock.close()

    def idle_connections(self, count: int = 256) -> None:
        sockets = []
        for _ in range(count):
            try:
                sockets.append(socket.create_connection(self.tcp, timeout=2))
            except OSError:
                break
        self.sent["idle_connections"] += len(sockets)
        time.sleep(2)
        for sock in sockets:
            sock.close()

    def invalid_utf8(self) -> None:
        try:
            with socket.create_connection(self.tcp, timeout=2) as sock:
                sock.sendall(b"<13>Nov 23 10:00:00 h hostile: bad \xff\xfe\xc3( bytes\n")
            self.sent["invalid_utf8"] += 1
        except OSError:
            pass

    def burst(self) -> None:
        for attack in (self.forged_provenance, self.deep_nesting, self.invalid_utf8,
                       self.gzip_bomb, self.slow_bodies, self.idle_connections):
            attack()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Soak:
    def __init__(self, workdir: Path, seconds: float, every: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.every = every
        self.disk = mount_tmpfs(workdir, "1500m")
        self.conf = crash_config(workdir)
        self.data = (self.disk or workdir) / "data"
        self.daemon = VigilProcess(self.conf, self.data)
        self.http = [HttpLoad(tenant) for tenant in TOKENS]
        self.tcp = TcpLoad()
        self.faults: Counter[str] = Counter()
        self.unexpected_exits: list[int | None] = []
        self.peak_rss = 0.0
        self.hostile: Counter[str] = Counter()
        self.full_disk_seconds = 0.0
        self.failed_starts = 0
        self.exited_pids: set[int] = set()

    def _attach(self) -> None:
        for load in self.http:
            load.address = "{}:{}".format(*self.daemon.source_address("http"))
        self.tcp.address = self.daemon.source_address("syslog_tcp")

    def _detach(self) -> None:
        for load in (*self.http, self.tcp):
            load.address = None

    def _sample_rss(self) -> None:
        proc = self.daemon.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak_rss = max(self.peak_rss, peak_rss_mb(proc.pid))

    def _check_alive(self, restart: bool = True) -> None:
        proc = self.daemon.proc
        if proc is not None and proc.poll() is not None:
            if proc.pid not in self.exited_pids:
                self.exited_pids.add(proc.pid)
                self.unexpected_exits.append(proc.returncode)
                print(f"daemon exited by itself with {proc.returncode}:\n"
                      + "\n".join(self.daemon.log_lines[-5:]), file=sys.stderr)
            self._detach()
            if restart:
                self._start()

    def _start(self) -> None:
        """Start the daemon, retrying (a start that fails is counted) for up to two minutes."""
        deadline = time.monotonic() + 120
        while True:
            try:
                self.daemon.start(timeout=60)
                break
            except (AssertionError, TimeoutError) as exc:
                self.failed_starts += 1
                print(f"start failed: {str(exc)[-300:]}", file=sys.stderr)
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        self._attach()

    def inject(self, fault: str) -> None:
        self.faults[fault] += 1
        print(f"{time.strftime('%H:%M:%S')} fault {fault}", file=sys.stderr)
        if fault in ("sigkill", "sigterm"):
            self._sample_rss()
            self._detach()
            if fault == "sigkill":
                self.daemon.kill()
            else:
                code = self.daemon.stop(timeout=60)
                if code != 0:
                    self.unexpected_exits.append(code)
            self._start()
        elif fault == "sighup":
            self.daemon.signal(signal.SIGHUP)
        elif fault == "disk_full":
            if self.disk is None:
                self.faults["disk_full_skipped"] += 1
                return
            started = time.monotonic()
            filler = fill_disk(self.disk)
            time.sleep(10)
            self._check_alive(restart=False)
            filler.unlink()
            self._check_alive()
            self.full_disk_seconds += time.monotonic() - started
        elif fault == "hostile":
            http = "{}:{}".format(*self.daemon.source_address("http"))
            hostile = Hostile(http, self.daemon.source_address("syslog_tcp"), self.rng)
            hostile.burst()
            self.hostile.update(hostile.sent)

    def run(self) -> dict[str, Any]:
        loads: list[Any] = [*self.http, self.tcp]
        for load in loads:
            load.start()
        self._start()
        started = time.monotonic()
        schedule = list(FAULTS)
        try:
            while time.monotonic() - started < self.seconds:
                time.sleep(self.rng.uniform(0.5, 1.5) * self.every)
                self._check_alive()
                self._sample_rss()
                self.inject(schedule[self.faults.total() % len(schedule)])
                self._check_alive()
        finally:
            for load in loads:
                load.halt.set()
            for load in loads:
                load.join(10)
        self._sample_rss()
        code = self.daemon.stop(timeout=120)
        if code != 0:
            self.unexpected_exits.append(code)
        return self.report(time.monotonic() - started)

    def report(self, elapsed: float) -> dict[str, Any]:
        found = lake_ids(self.data)
        acked = [i for load in self.http for i in load.acknowledged]
        http_sent = sum(load.next_id for load in self.http)
        http_found = sum(1 for i in found if i.startswith(tuple(TOKENS)))
        tcp_ids = [f"t{i}" for i in range(self.tcp.next_id)]
        dead_letters = sum(1 for _ in (self.data / "dlq").glob("**/*.jsonl"))
        outside = [p for p in self.data.parent.iterdir()
                   if p.name not in ("data", "conf.d", "tmpfs", "filler.bin")]
        return {
            "seconds": round(elapsed, 1),
            "faults": dict(self.faults),
            "hostile_sent": dict(self.hostile),
            "full_disk_seconds": round(self.full_disk_seconds, 1),
            "http": {"sent": http_sent, "acknowledged": len(acked), "in_lake": http_found,
                     "lost": sum(1 for i in acked if found[i] == 0),
                     "duplicated": sum(1 for i in acked if found[i] > 1)},
            "tcp": {"sent": len(tcp_ids), "in_lake": sum(1 for i in tcp_ids if found[i]),
                    "lost": sum(1 for i in tcp_ids if found[i] == 0),
                    "duplicated": sum(1 for i in tcp_ids if found[i] > 1)},
            "dead_letter_files": dead_letters,
            "unexpected_exits": self.unexpected_exits,
            "failed_starts": self.failed_starts,
            "files_outside_data_dir": [str(p) for p in outside],
            "peak_rss_mb": round(self.peak_rss, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--every", type=float, default=15.0,
                        help="mean seconds between two faults")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-soak-") as tmp:
        soak = Soak(Path(tmp), args.seconds, args.every, args.seed)
        try:
            result = soak.run()
        finally:
            soak.daemon.kill()
            if soak.disk is not None:
                subprocess.run(["umount", "-l", str(soak.disk)], check=False)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
