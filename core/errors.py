"""Vigil's exception root, the errors that carry a location in a config file, and the errors an
operator can fix, which the CLI reports as one line and a sysexits code instead of a traceback."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from core.registry import did_you_mean


class ExitCode(IntEnum):
    """sysexits.h: how a command ended, for scripts and systemd (`RestartPreventExitStatus=`)."""

    USAGE = 64  # a command-line argument is wrong
    DATAERR = 65  # input data is wrong
    NOINPUT = 66  # an input file or directory does not exist or cannot be read
    UNAVAILABLE = 69  # a service is unavailable (a port in use, a server not answering)
    SOFTWARE = 70  # a bug
    CANTCREAT = 73  # an output file cannot be created
    IOERR = 74  # an input/output error
    TEMPFAIL = 75  # try again later (another process holds the journal, a database is locked)
    NOPERM = 77  # permission denied
    CONFIG = 78  # the configuration is wrong


@dataclass(frozen=True)
class Location:
    """A position in a file: 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""


class OperatorError(VigilError):
    """A mistake the operator can fix (a port in use, a locked journal, a missing file): one line
    naming the component, the address or file, what went wrong and what to do."""

    exit_code: int = ExitCode.UNAVAILABLE

    def __init__(self, component: str, problem: str, *, hint: str = "",
                 exit_code: int | None = None) -> None:
        self.component = component
        self.problem = problem
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.component}: {self.problem}" if self.component else self.problem
        return f"{text}; {self.hint}" if self.hint else text


def usage_error(problem: str, hint: str = "") -> OperatorError:
    """A command-line argument that cannot be right (EX_USAGE)."""
    return OperatorError("", problem, hint=hint, exit_code=ExitCode.USAGE)


def unknown_name(kind: str, name: str, known: Iterable[str]) -> OperatorError:
    """`unknown tenant 'acm' (did you mean 'acme'?); configured tenants: acme, bravo`."""
    names = sorted(known)
    listed = ", ".join(names) if names else "none"
    return usage_error(f"unknown {kind} {name!r}{did_you_mean(name, names)}",
                       f"configured {kind}s: {listed}")


# errno -> exit code, for an OSError an operator caused (a path, a port, a permission).
_ERRNO_EXIT = {
    errno.ENOENT: ExitCode.NOINPUT, errno.ENOTDIR: ExitCode.NOINPUT,
    errno.EISDIR: ExitCode.NOINPUT, errno.EACCES: ExitCode.NOPERM, errno.EPERM: ExitCode.NOPERM,
    errno.EROFS: ExitCode.CANTCREAT, errno.ENOSPC: ExitCode.CANTCREAT,
    errno.EDQUOT: ExitCode.CANTCREAT, errno.EADDRINUSE: ExitCode.UNAVAILABLE,
    errno.EADDRNOTAVAIL: ExitCode.UNAVAILABLE,
}


def _strerror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def access_detail(path: Path | str) -> str:
    """Why a permission was refused: `(owner root:root, mode 0600; this process runs as vigil)`."""
    target, where = Path(path), ""
    while not os.path.exists(target) and target != target.parent:
        target = target.parent  # a directory that cannot be created: its parent refused
        where = f"{target}: "
    try:
        info = os.stat(target)
    except OSError:
        return ""
    owner = _name(pwd.getpwuid, info.st_uid) + ":" + _name(grp.getgrgid, info.st_gid)
    mode = f"{stat.S_IMODE(info.st_mode):04o}"
    user = _name(pwd.getpwuid, os.geteuid())
    return f" ({where}owner {owner}, mode {mode}; this process runs as {user})"


def _name(lookup: object, ident: int) -> str:
    try:
        return str(lookup(ident)[0])  # type: ignore[operator]
    except KeyError:
        return str(ident)


def listen_error(exc: OSError, component: str, address: str, setting: str) -> OperatorError:
    """A listener that could not bind `address`, told as what to do about it."""
    port = address.rpartition(":")[2]
    problem = f"cannot listen on {address}: {_strerror(exc)}"
    if exc.errno == errno.EADDRINUSE:
        problem = f"cannot listen on {address}: address already in use"
        hint = f"stop the program that holds it (ss -ltnup 'sport = :{port}') or change {setting}"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = (f"ports below 1024 need CAP_NET_BIND_SERVICE (AmbientCapabilities= in the unit), "
                f"or change {setting}")
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = f"no interface of this host has that address; change {setting}"
    else:
        hint = f"change {setting}"
    return OperatorError(component, problem, hint=hint,
                         exit_code=_ERRNO_EXIT.get(exc.errno or 0, ExitCode.UNAVAILABLE))


def explain(exc: BaseException) -> OperatorError | None:
    """The operator's side of an exception no command caught: a file that is missing or
    unreadable, a database another process locks. None for anything else (a bug: let the
    traceback show)."""
    if isinstance(exc, OperatorError):
        return exc
    if isinstance(exc, OSError) and exc.filename is not None:
        name = str(exc.filename)
        code = _ERRNO_EXIT.get(exc.errno or 0, ExitCode.IOERR)
        if code == ExitCode.NOINPUT:
            return OperatorError("", f"cannot read {name}: {_strerror(exc)}", exit_code=code)
        detail = access_detail(name) if code == ExitCode.NOPERM else ""
        return OperatorError("", f"{name}: {_strerror(exc)}{detail}", exit_code=code)
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "locked" in text or "unable to open" in text or "readonly" in text:
            return OperatorError("database", text, hint="is another vigil using it? check the "
                                 "data directory's owner and try again",
                                 exit_code=ExitCode.TEMPFAIL)
    return None


# Exceptions that say the environment failed, not the event (poison, see collector.poison):
# retried, never dead-lettered.
ENVIRONMENTAL: tuple[type[BaseException], ...] = (OSError, MemoryError, sqlite3.OperationalError)


def is_environmental(exc: BaseException) -> bool:
    return isinstance(exc, ENVIRONMENTAL)


class ConfigError(VigilError):
    """One problem in the configuration, rendered as `FILE:LINE:COL: key.path: message`.

    `followers` counts the errors that only follow from this one (references to the ids of a
    file that did not parse or of an entry that did not validate); they are not reported."""

    exit_code: int = ExitCode.CONFIG

    def __init__(self, message: str, *, location: Location | None = None, path: str = "") -> None:
        self.message = message
        self.location = location
        self.path = path
        self.followers = 0
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigInputError(ConfigError):
    """The configuration cannot be read at all: a missing or unreadable file or directory."""

    exit_code = ExitCode.NOINPUT


class ConfigErrors(VigilError):
    """Every problem found in one validation pass, reported together (root causes only: see
    `ConfigError.followers`)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

    @property
    def following(self) -> int:
        """Errors left out because they only follow from one reported."""
        return sum(e.followers for e in self.errors)

    @property
    def exit_code(self) -> int:
        """EX_NOINPUT when something could not be read, else EX_CONFIG."""
        return max((e.exit_code for e in self.errors), default=ExitCode.CONFIG,
                   key=lambda code: code == ExitCode.NOINPUT)

    def summary(self, conf_dir: Path | str) -> str:
        """`2 error(s) in conf.d (and 84 that follow from them)`."""
        text = f"{len(self.errors)} error(s) in {conf_dir}"
        return f"{text} (and {self.following} that follow from them)" if self.following else text

    def report(self, conf_dir: Path | str) -> list[str]:
        """The lines a command prints: each error, how many follow from it, a count."""
        lines = []
        for error in self.errors:
            lines.append(str(error))
            if error.followers:
                noun = "error that follows" if error.followers == 1 else "errors that follow"
                lines.append(f"  and {error.followers} {noun} from it")
        return [*lines, self.summary(conf_dir)]
