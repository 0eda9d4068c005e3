"""Helpers for fault tests: a daemon started without waiting for /readyz, HTTP posts with
acknowledgements tracked, a disk filled to its last byte, leftover temporary files."""

from __future__ import annotations

import errno
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.daemon import VigilProcess

TOKEN = "faults-token-demo"


def http_source() -> dict[str, Any]:
    """An HTTP source for tenant demo, on an OS-chosen port."""
    return {"type": "http", "address": "127.0.0.1:0",
            "tokens": {"demo": {"tenant": "demo",
                                "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}}}


def post(daemon: VigilProcess, messages: list[str], timeout: float = 10.0) -> int:
    """POST one NDJSON body of `{"message": m}` lines; the HTTP status (0: no answer)."""
    host, port = daemon.source_address("http")
    body = b"".join(json.dumps({"message": m}).encode() + b"\n" for m in messages)
    request = urllib.request.Request(f"http://{host}:{port}/v1/logs", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def fill_disk(directory: Path) -> Path:
    """Write a ballast file until the file system refuses another byte; returns its path."""
    ballast = directory / "ballast"
    chunk = b"\0" * 65536
    with open(ballast, "wb", buffering=0) as handle:
        size = len(chunk)
        while size:
            try:
                handle.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2
    return ballast


def leftover_temporaries(root: Path) -> list[Path]:
    """Hidden `.<name>.tmp` files some writer left behind."""
    return [p for p in root.rglob(".*.tmp") if p.is_file()]
