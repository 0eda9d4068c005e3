"""Grok pattern definitions: pygrok's bundled library, pattern files and inline definitions.

A pattern file holds `NAME regex` lines (blank lines and `#` comments skipped), the format of
Logstash's and pygrok's pattern directories. Later definitions replace earlier ones by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pygrok

BUNDLED_DIR = Path(pygrok.__file__).resolve().parent / "patterns"
PATTERN_NAME_RE = re.compile(r"\w+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Definition:
    """One named pattern and where it was defined (for error messages)."""

    name: str
    regex: str
    origin: str


class PatternFileError(ValueError):
    """A pattern file or directory that cannot be read or holds a malformed line."""


def read_pattern_file(path: Path) -> dict[str, Definition]:
    """The definitions of one pattern file, in file order (a repeated name: the last wins)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternFileError(f"cannot read grok pattern file {str(path)!r}: {exc}") from None
    found: dict[str, Definition] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, regex = line.partition(" ")
        regex = regex.strip()
        if not PATTERN_NAME_RE.fullmatch(name) or not regex:
            raise PatternFileError(f"{path}:{number}: expected `NAME regex`, got {line[:60]!r}")
        found[name] = Definition(name, regex, f"{path}:{number}")
    return found


def read_pattern_path(path: Path) -> dict[str, Definition]:
    """Every definition of a pattern directory (its files in name order, hidden files skipped)
    or of a single pattern file."""
    if path.is_file():
        return read_pattern_file(path)
    if not path.is_dir():
        raise PatternFileError(f"grok pattern directory {str(path)!r} does not exist")
    found: dict[str, Definition] = {}
    for child in sorted(path.iterdir()):
        if child.is_file() and not child.name.startswith("."):
            found.update(read_pattern_file(child))
    return found


@lru_cache(maxsize=1)
def bundled_patterns() -> dict[str, Definition]:
    """pygrok's pattern library. pygrok itself reads its files in directory order, which makes
    the few names defined twice (JAVACLASS, JAVAFILE, ...) depend on the file system; here files
    are read in name order."""
    return read_pattern_path(BUNDLED_DIR)
