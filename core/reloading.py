"""Files that reload when they change: enrichment files (lookup tables, indicator lists, GeoIP
databases) and HTTP token files.

`ReloadingFile` holds the value loaded from one file. `refresh()`, called on the daemon's tick
(a step's or a source's `maintain()`), costs one `stat`; a file whose signature changed is
loaded again. A file that vanished or no longer loads keeps the previous value (enrichment
data: stale beats none), or, given `on_error`, is replaced by it (a credential: a removed token
file revokes the token). Either way it is logged and counted once per change, so a broken file
does not flood the log every tick.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from core.errors import VigilError

log = logging.getLogger(__name__)

T = TypeVar("T")

# (device, inode, size, mtime in ns): an atomic replace changes the inode, an in-place rewrite
# the size or the mtime. Two rewrites of equal size within one mtime tick look the same; tools
# that replace files atomically (geoipupdate, `mv`) never hit that.
Signature = tuple[int, int, int, int]
_MISSING: Signature = (-1, -1, -1, -1)


class EnrichmentFileError(VigilError):
    """A file that cannot be used; the message says why (it is shown to the user as is)."""


def file_signature(path: Path) -> Signature:
    """What `refresh` compares to notice a change; raises OSError when the file is missing."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def missing_file_message(kind: str, path: Path) -> str | None:
    """`'<kind> not found: PATH'` (or why it is not a readable file), None when it is usable.
    The validation message of every enricher that reads a file."""
    if not path.exists():
        return f"{kind} not found: {path}"
    if not path.is_file():
        return f"{kind} is not a file: {path}"
    if not os.access(path, os.R_OK):
        return f"{kind} is not readable: {path}"
    return None


_KEEP: Any = object()


class ReloadingFile(Generic[T]):
    """The value loaded from one file, replaced when the file changes.

    `load(path)` turns the file into a value and raises (preferably `EnrichmentFileError`) on
    a file it cannot use. The first load happens in the constructor and its error propagates:
    a component must not start without its data. Later failures keep the previous value, or
    set `on_error` when one is given.
    """

    def __init__(self, path: Path, load: Callable[[Path], T], *, what: str,
                 on_error: T = _KEEP) -> None:
        self.path = path
        self.what = what
        self._load = load
        self._on_error = on_error
        # Stat before reading: a change during the read is then seen on the next refresh.
        self.signature = file_signature(path)
        self.value: T = load(path)
        self.reloads = 0
        self.reload_errors = 0
        self._failed: Signature | None = None

    def stats(self) -> dict[str, int]:
        return {"reloads": self.reloads, "reload_errors": self.reload_errors}

    def refresh(self) -> bool:
        """Reload if the file changed; True when `value` was replaced (by the new load, or by
        `on_error` when the file can no longer be used)."""
        try:
            signature = file_signature(self.path)
        except OSError as exc:
            return self._failure(_MISSING, f"cannot stat the file: {exc.strerror or exc}")
        if signature == self.signature or signature == self._failed:
            return False
        try:
            value = self._load(self.path)
        except Exception as exc:  # no file we cannot use may stop the daemon
            reason = str(exc) if isinstance(exc, EnrichmentFileError) else \
                f"{type(exc).__name__}: {exc}"
            return self._failure(signature, reason)
        self.value = value
        self.signature = signature
        self._failed = None
        self.reloads += 1
        log.info("file reloaded", extra={"what": self.what, "path": str(self.path)})
        return True

    def _failure(self, signature: Signature, reason: str) -> bool:
        if signature == self._failed:
            return False
        self._failed = signature
        self.reload_errors += 1
        extra = {"what": self.what, "path": str(self.path), "error": reason}
        if self._on_error is _KEEP:
            log.error("file not reloaded, keeping the previous version", extra=extra)
            return False
        self.value = self._on_error
        self.signature = signature
        log.error("file unusable; its previous version is dropped until it is fixed",
                  extra=extra)
        return True


def file_stats(files: Iterable[ReloadingFile[Any]], counts: dict[str, int]) -> dict[str, int]:
    """A step's counts plus the reloads and reload errors of all its files (`Step.stats`)."""
    out = dict(counts)
    for reloading in files:
        for name, value in reloading.stats().items():
            out[name] = out.get(name, 0) + value
    return out


def read_token_file(path: Path) -> str:
    """The token a file holds (surrounding whitespace removed); ValueError says why not."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read token file {path}: {reason}") from None
    if not secret:
        raise ValueError(f"token file {path} is empty")
    return secret
