"""The compiled-rule cache: what compiling each rule file produced, stored as plain data under
`<data_dir>/cache/rules/`, so a start or reload recompiles only files that changed.

An entry is keyed by the file's path and owner, its content (sha256) and, for a file using
`|expand` placeholders, the placeholder values and tenants it was compiled with; the whole cache
by the engine's fingerprint: `ENGINE_VERSION`, a digest of the compiler's own source files,
pySigma's version and every mapping pipeline's content. A cached rule is rebuilt from its stored
IR (`rules/compiler/codec.py`), never by executing stored content: the file is JSON, and one
that does not parse, names another engine, or is writable by group or others (or owned by
another user) is ignored, counted, and rewritten from a fresh compile. Files holding Sigma
correlations or filters are not cached: they are resolved against every other file's rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import stat
import sys
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from sigma.rule import SigmaLogSource

from core.durable import write_atomic
from rules.compiler.codec import node_from_data, node_to_data
from rules.compiler.condition import compile_ir
from rules.datasets import Mapping
from rules.match import RuleInfo
from rules.new_value import NewValueSpec
from rules.ruleset import CompiledRule, InactiveRule, LoadError, RuleSet

log = logging.getLogger(__name__)

# Bump whenever compilation changes what a stored entry means (IR, anchors, rule metadata).
# The compiler's source digest below also changes the fingerprint on any code change.
ENGINE_VERSION = 1
CACHE_FILE = "compiled.json"
FORMAT = "vigil-rule-cache"
_COMPILER_SOURCES = ("loader.py", "datasets.py", "placeholders.py", "new_value.py", "match.py",
                     "cache.py", "compiler")


@dataclass
class CacheStats:
    """What one load did with the cache: files served from it, compiled, and entries refused."""

    hits: int = 0
    misses: int = 0
    invalid: int = 0  # cache files or entries ignored as corrupt, foreign or unreadable
    uncached: int = 0  # files with correlations or filters (resolved against the others)
    write_errors: int = 0
    written: bool = False


def engine_fingerprint(mapping_digests: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """The digest a cache must carry to be used: engine, compiler code, pySigma, mappings."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT}:{ENGINE_VERSION}:{sys.version_info[:2]}".encode())
    try:
        digest.update(metadata.version("pysigma").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"pysigma-unknown")
    root = Path(__file__).resolve().parent
    for name in _COMPILER_SOURCES:
        path = root / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    for name, content, datasets in mapping_digests:
        digest.update(orjson.dumps([name, content, list(datasets)]))
    return digest.hexdigest()


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RuleCache:
    """One load's view of the cache file: lookups, new entries, and the write at the end."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.path = directory / CACHE_FILE
        self.fingerprint = fingerprint
        self.stats = CacheStats()
        self._entries: dict[str, dict[str, Any]] = {}
        self._used: dict[str, dict[str, Any]] = {}
        self._changed = False
        self._read()

    @staticmethod
    def key(path: Path, owner: str | None) -> str:
        return f"{owner or ''}\0{path}"

    def _read(self) -> None:
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._refuse(f"unreadable: {exc}")
            return
        if not stat.S_ISREG(info.st_mode):
            self._refuse("not a regular file")
            return
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or (
                hasattr(os, "getuid") and info.st_uid != os.getuid()):
            self._refuse("writable by others or owned by another user")
            return
        try:
            document = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            self._refuse(f"unreadable: {exc}")
            return
        if (not isinstance(document, dict) or document.get("format") != FORMAT
                or not isinstance(document.get("entries"), dict)):
            self._refuse("not a rule cache")
            return
        if document.get("fingerprint") != self.fingerprint:
            # Another engine, compiler or mapping set wrote it: not an error, just stale.
            log.info("rule cache is for another engine or mapping set; rebuilding",
                     extra={"path": str(self.path)})
            self._changed = True
            return
        self._entries = document["entries"]

    def _refuse(self, reason: str) -> None:
        self.stats.invalid += 1
        self._changed = True
        log.warning("rule cache ignored", extra={"path": str(self.path), "reason": reason})

    def lookup(self, key: str, digest: str, context: str) -> dict[str, Any] | None:
        """A file's stored outputs, if compiled from this content (and placeholder context)."""
        entry = self._entries.get(key)
        if not isinstance(entry, dict) or entry.get("sha256") != digest:
            return None
        if entry.get("context") not in (None, context):
            return None
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            return None
        self._used[key] = entry
        return outputs

    def invalid_entry(self, key: str, reason: str) -> None:
        """A stored entry that could not be rebuilt: counted, compiled again and replaced."""
        self._used.pop(key, None)
        self._refuse(f"entry {key.replace(chr(0), ' ')!r}: {reason}")

    def store(self, key: str, digest: str, context: str | None, outputs: dict[str, Any]) -> None:
        self._used[key] = {"sha256": digest, "context": context, "outputs": outputs}
        self._changed = True

    def save(self) -> None:
        """Write the entries this load used (entries for files now gone are dropped); a failed
        write is logged and counted, never fatal: the next start compiles again."""
        if not self._changed and self._used.keys() == self._entries.keys():
            return
        if not _owned_by_us(self.path.parent):
            # e.g. `vigil coverage` run by root on the daemon's data directory: a cache (or
            # directory) it wrote would be refused by, or unwritable for, the daemon.
            log.info("rule cache not written: directory owned by another user",
                     extra={"path": str(self.path)})
            return
        document = {"format": FORMAT, "fingerprint": self.fingerprint, "entries": self._used}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, orjson.dumps(document))
            self.path.chmod(0o600)  # a group-writable cache would be refused at the next load
            self.stats.written = True
        except OSError as exc:
            self.stats.write_errors += 1
            log.warning("rule cache not written", extra={"path": str(self.path),
                                                         "reason": str(exc)})


def _owned_by_us(directory: Path) -> bool:
    """Whether the directory (or, while it does not exist, its nearest existing parent) is
    owned by this process's user."""
    if not hasattr(os, "getuid"):
        return True
    for candidate in (directory, *directory.parents):
        try:
            return candidate.stat().st_uid == os.getuid()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return False
    return False


# -- a file's outputs as data ---------------------------------------------------------------


def record_outputs(ruleset: RuleSet, marks: Marks, read_errors: list[LoadError]
                   ) -> dict[str, Any]:
    """What compiling one file added to the rule set since `marks`, as JSON-ready data."""
    return {
        "read_errors": [_error_data(e) for e in read_errors[marks.read_errors:]],
        "errors": [_error_data(e) for e in ruleset.errors[marks.errors:]],
        "rules": [_rule_data(r) for r in ruleset.rules[marks.rules:]],
        "unserved": [_info_data(i) for i in ruleset.unserved[marks.unserved:]],
        "inactive": [[_info_data(r.info), r.reason, list(r.owners), sorted(r.placeholders)]
                     for r in ruleset.inactive[marks.inactive:]],
    }


def replay_outputs(ruleset: RuleSet, outputs: Any, read_errors: list[LoadError]) -> None:
    """Add a file's stored outputs to the rule set; ValueError (nothing added) when they are
    not what `record_outputs` writes."""
    if not isinstance(outputs, dict):
        raise ValueError("entry is not a mapping")
    by_name = {m.name: m for m in ruleset.mappings}
    position = len(ruleset.rules)
    rules = []
    for number, data in enumerate(_items(outputs, "rules")):
        rules.append(_rule_from(data, position + number, by_name))
    unserved = [_info_from(data) for data in _items(outputs, "unserved")]
    inactive = [_inactive_from(data) for data in _items(outputs, "inactive")]
    errors = [_error_from(data) for data in _items(outputs, "errors")]
    new_read_errors = [_error_from(data) for data in _items(outputs, "read_errors")]
    ruleset.rules.extend(rules)
    ruleset.unserved.extend(unserved)
    ruleset.inactive.extend(inactive)
    ruleset.errors.extend(errors)
    read_errors.extend(new_read_errors)
    for rule in inactive:
        log.warning("sigma rule inactive", extra={"file": rule.info.file, "rule": rule.info.id,
                                                  "reason": rule.reason})


@dataclass(frozen=True)
class Marks:
    """Lengths of the rule set's lists before a file was compiled."""

    rules: int
    errors: int
    unserved: int
    inactive: int
    read_errors: int

    @classmethod
    def of(cls, ruleset: RuleSet, read_errors: list[LoadError]) -> Marks:
        return cls(len(ruleset.rules), len(ruleset.errors), len(ruleset.unserved),
                   len(ruleset.inactive), len(read_errors))


_INFO_FIELDS = {f.name: f for f in dataclasses.fields(RuleInfo)}


def _info_data(info: RuleInfo) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(info).items()}


def _info_from(data: Any) -> RuleInfo:
    if not isinstance(data, dict) or not data.keys() <= _INFO_FIELDS.keys():
        raise ValueError("bad rule metadata")
    values = {}
    for name, value in data.items():
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"bad rule metadata {name}")
            value = tuple(value)
        elif value is not None and not isinstance(value, (str, int, float)):
            raise ValueError(f"bad rule metadata {name}")
        values[name] = value
    return RuleInfo(**values)


def _rule_data(rule: CompiledRule) -> dict[str, Any]:
    conditions: list[list[Any]] = []
    seen: set[str] = set()
    for dataset, mapping in rule.mappings.items():
        condition = rule.conditions[dataset]
        if mapping.name in seen:
            continue
        if condition.ir is None:
            raise TypeError("a compiled condition without its IR")
        seen.add(mapping.name)
        conditions.append([mapping.name, node_to_data(condition.ir)])
    logsource = rule.logsource
    spec = rule.new_value
    return {
        "info": _info_data(rule.info),
        "logsource": [logsource.category, logsource.product, logsource.service]
        if logsource is not None else None,
        "placeholders": sorted(rule.placeholders),
        "new_value": [list(spec.fields), list(spec.group_by), spec.learning.total_seconds()]
        if spec is not None else None,
        "conditions": conditions,
    }


def _rule_from(data: Any, position: int, mappings: dict[str, Mapping]) -> CompiledRule:
    if not isinstance(data, dict):
        raise ValueError("bad rule")
    rule = CompiledRule(info=_info_from(data.get("info")), position=position,
                        placeholders=frozenset(_strings(data.get("placeholders", []))))
    logsource = data.get("logsource")
    if logsource is not None:
        if not isinstance(logsource, list) or len(logsource) != 3 or not all(
                v is None or isinstance(v, str) for v in logsource):
            raise ValueError("bad logsource")
        rule.logsource = SigmaLogSource(*logsource)
    spec = data.get("new_value")
    if spec is not None:
        if not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[2], (int, float)):
            raise ValueError("bad new_value")
        rule.new_value = NewValueSpec(_strings(spec[0]), _strings(spec[1]),
                                      timedelta(seconds=spec[2]))
    for item in _items(data, "conditions"):
        if not isinstance(item, list) or len(item) != 2 or item[0] not in mappings:
            raise ValueError("condition for an unknown mapping")
        mapping = mappings[item[0]]
        condition = compile_ir(node_from_data(item[1]), mapping.resolver, lazy=True)
        for dataset in mapping.datasets:
            rule.conditions[dataset] = condition
            rule.mappings[dataset] = mapping
    return rule


def _inactive_from(data: Any) -> InactiveRule:
    if not isinstance(data, list) or len(data) != 4 or not isinstance(data[1], str):
        raise ValueError("bad inactive rule")
    owners = data[2]
    if not isinstance(owners, list) or not all(o is None or isinstance(o, str) for o in owners):
        raise ValueError("bad inactive rule owners")
    return InactiveRule(_info_from(data[0]), data[1], tuple(owners),
                        frozenset(_strings(data[3])))


def _error_data(error: LoadError) -> list[Any]:
    return [error.file, error.reason, error.rule]


def _error_from(data: Any) -> LoadError:
    if (not isinstance(data, list) or len(data) != 3 or not isinstance(data[0], str)
            or not isinstance(data[1], str) or not (data[2] is None or isinstance(data[2], str))):
        raise ValueError("bad load error")
    return LoadError(data[0], data[1], data[2])


def _items(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise ValueError(f"bad {name}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    return tuple(value)
