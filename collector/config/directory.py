"""Reading a conf.d directory: its *.yaml files in sorted order, parsed with positions; a file
that cannot be read or parsed is kept with its error and the ids it may have declared, so
errors that only follow from it are counted on it instead of reported."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from collector.config.yaml_positions import PositionedDocument, load_positioned
from core.errors import ConfigError, ConfigInputError, Location, access_detail

# A name a line of an unparseable file seems to declare: `  syslog_tcp:`, or `  syslog_tcp` when
# the colon is what is missing. References to such names follow from the syntax error.
_DECLARED_NAME = re.compile(r"^\s*(?:-\s+)?[\"']?([A-Za-z0-9_.@-]+)[\"']?\s*(?::|$)")


@dataclass
class Unreadable:
    """A file that did not parse (or could not be read) and the ids it may have declared (None:
    it could have declared anything)."""

    error: ConfigError
    names: set[str] | None


def _declared_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = _DECLARED_NAME.match(line.split(" #")[0])
        if match and not line.lstrip().startswith("#"):
            names.add(match.group(1))
    return names


def read_documents(conf_dir: Path) -> tuple[list[PositionedDocument], list[Unreadable]]:
    """Parse every *.yaml in `conf_dir` (sorted); a file that cannot be read or parsed is
    returned with its error, not raised. A directory that cannot be listed or holds no *.yaml
    is an error too: a configuration that silently reads nothing collects nothing."""
    docs: list[PositionedDocument] = []
    failed: list[Unreadable] = []
    try:
        entries = sorted(os.scandir(conf_dir), key=lambda entry: entry.name)
    except FileNotFoundError:
        return [], [Unreadable(ConfigInputError("configuration directory does not exist",
                                                 location=Location(str(conf_dir))), None)]
    except NotADirectoryError:
        return [], [Unreadable(ConfigInputError(
            "not a directory; -c names the conf.d directory that holds the *.yaml files",
            location=Location(str(conf_dir))), None)]
    except PermissionError:
        return [], [Unreadable(ConfigInputError(
            f"cannot list the directory: permission denied{access_detail(conf_dir)}",
            location=Location(str(conf_dir))), None)]
    paths = [Path(e.path) for e in entries if e.name.endswith(".yaml") and not e.is_dir()]
    if not paths:
        return [], [Unreadable(ConfigInputError(
            f"no configuration files (*.yaml) in this directory{_nearby_conf_d(entries)}",
            location=Location(str(conf_dir))), None)]
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except PermissionError:
            failed.append(Unreadable(ConfigInputError(
                f"cannot read: permission denied{access_detail(path)}",
                location=Location(str(path))), None))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            failed.append(Unreadable(ConfigInputError(f"cannot read file: {exc}",
                                                       location=Location(str(path))), None))
            continue
        try:
            docs.append(load_positioned(str(path), text))
        except ConfigError as exc:
            failed.append(Unreadable(exc, _declared_names(text)))
    return docs, failed


def _nearby_conf_d(entries: list[os.DirEntry[str]]) -> str:
    """`; did you mean -c DIR/conf.d?` when a subdirectory holds *.yaml files (`-c /etc/vigil`
    for `-c /etc/vigil/conf.d`)."""
    for entry in entries:
        try:
            if entry.is_dir() and any(Path(entry.path).glob("*.yaml")):
                return f"; did you mean -c {entry.path}?"
        except OSError:
            continue
    return ""
