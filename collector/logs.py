"""Structured logging: logfmt (default) or JSON lines on stderr.

Fields passed as `extra={...}` become key/value pairs; nothing in library code prints.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_logfmt_value(record.getMessage())}"]
        parts += [f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage(), **_fields(record)}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Install one stderr handler on the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """At most one line per cause per `interval` seconds (a flood of refused or idle clients
    must not flood the log); each line says how many were held back since the last."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_causes: int = 1024) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self.max_causes = max_causes  # causes may name peers: bounded, however many there are
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, cause: str, msg: str, **fields: Any) -> None:
        now = self.clock()
        if cause not in self._last and len(self._last) >= self.max_causes:
            self._forget(now)
            if len(self._last) >= self.max_causes:
                cause = "_other"  # a flood of new causes shares one line per interval
        last = self._last.get(cause)
        if last is not None and now - last < self.interval:
            self._held[cause] = self._held.get(cause, 0) + 1
            return
        self._last[cause] = now
        held = self._held.pop(cause, 0)
        self.logger.log(level, msg, extra={**fields, "cause": cause, "suppressed": held})

    def _forget(self, now: float) -> None:
        """Drop causes quiet for a whole interval (their held-back counts were never due)."""
        for cause in [c for c, at in self._last.items() if now - at >= self.interval]:
            del self._last[cause]
            self._held.pop(cause, None)
