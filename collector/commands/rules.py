"""`vigil rules test` (Sigma rules over event files) and `vigil rules lint` (pySigma validators).

`rules test` prints one JSON line per alert; files in the EVTX-as-JSON shape are flattened into
the `windows.event` dataset, other events need `--dataset`. Exit status: 0, or 1 when a rule or an
event file could not be loaded (reported on stderr, the rest still runs), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

WINDOWS_DATASET = "windows.event"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("rules", help="test and lint Sigma rules")
    commands = parser.add_subparsers(dest="rules_command", metavar="ACTION")
    commands.required = True

    test = commands.add_parser("test", parents=[common], help="run rules over event files")
    test.add_argument("--rules", nargs="+", type=Path, required=True, metavar="PATH",
                      help="Sigma rule files or directories")
    test.add_argument("--events", nargs="+", type=Path, required=True, metavar="FILE",
                      help="JSON lines, a JSON event or list, or concatenated JSON objects")
    test.add_argument("--dataset", default=None, metavar="NAME",
                      help="dataset of events that are not EVTX-as-JSON (e.g. linux.auth)")
    test.add_argument("--tenant", default="cli", help="tenant the events are evaluated for")
    test.set_defaults(func=run_test)

    lint = commands.add_parser("lint", help="check Sigma rules with pySigma's validators")
    lint.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    lint.add_argument("--attack-data", type=Path, default=None, metavar="FILE",
                      help="local enterprise-attack.json: also validate ATT&CK tags")
    lint.add_argument("--skip", action="append", default=[], metavar="VALIDATOR",
                      help="leave a pySigma validator out (repeatable)")
    lint.set_defaults(func=run_lint)


# Validators that download MITRE data at run time (a collector host is often offline), and the
# TLP v1/v2 variants that contradict each other (tlptag accepts both).
OFFLINE_SKIPPED = {"attacktag", "d3_fendtag", "tlpv1_tag", "tlpv2_tag"}


@dataclass
class FileEvent:
    """One event read from a file: where it came from and the dataset it belongs to."""

    file: str
    index: int
    dataset: str | None
    event: dict[str, Any]


def read_event_file(path: Path, dataset: str | None) -> Iterator[FileEvent]:
    """Events of one file; EVTX-as-JSON documents become `windows.event` events."""
    from parsers.windows import flatten_windows_event, is_windows_event, iter_json_documents

    index = 0
    for document in iter_json_documents(path.read_bytes()):
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise ValueError(f"event {index} is a {type(item).__name__}, not an object")
            if is_windows_event(item):
                yield FileEvent(str(path), index, WINDOWS_DATASET, flatten_windows_event(item))
            else:
                yield FileEvent(str(path), index, dataset, item)
            index += 1


def run_test(args: argparse.Namespace) -> int:
    from rules.engine import DetectionEngine
    from rules.loader import load_rules

    ruleset = load_rules(args.rules)
    failed = bool(ruleset.errors)
    for error in ruleset.errors:
        print(f"{error}", file=sys.stderr)
    engine = DetectionEngine(ruleset)
    seen: list[FileEvent] = []  # every event read; a match's EventRef.offset indexes it
    for path in args.events:
        try:
            events = list(read_event_file(path, args.dataset))
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            failed = True
            continue
        missing = [e.index for e in events if e.dataset is None]
        if missing:
            print(f"{path}: {len(missing)} event(s) are not EVTX-as-JSON and no --dataset was "
                  f"given (first: event {missing[0]})", file=sys.stderr)
            failed = True
        for dataset, group in _runs(e for e in events if e.dataset is not None):
            offsets = list(range(len(seen), len(seen) + len(group)))
            seen.extend(group)
            matches = engine.evaluate(dataset, [e.event for e in group], args.tenant, offsets)
            for match in matches:
                _print_match(match, [seen[ref.offset] for ref in match.events
                                     if ref.offset is not None])
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    for match in engine.correlation.flush(now=far_future):
        _print_match(match, [seen[ref.offset] for ref in match.events if ref.offset is not None])
    return 1 if failed else 0


def _runs(events: Iterator[FileEvent]) -> Iterator[tuple[str, list[FileEvent]]]:
    """Consecutive events of the same dataset, so correlations see them in file order."""
    current: list[FileEvent] = []
    for event in events:
        if current and event.dataset != current[-1].dataset:
            yield str(current[-1].dataset), current
            current = []
        current.append(event)
    if current:
        yield str(current[-1].dataset), current


def _print_match(match: Any, sources: list[FileEvent]) -> None:
    record = {
        "rule_id": match.rule_id, "title": match.title, "level": match.level,
        "kind": match.rule.kind,
        "event_index": sources[-1].index if sources else None,
        "file": sources[-1].file if sources else None,
        "dataset": match.dataset,
    }
    if match.rule.kind != "rule":
        record["event_indexes"] = [s.index for s in sources]
        record["group_key"] = match.group_key
        record["value"] = match.value
    record["tactics"] = list(match.rule.tactics)
    record["techniques"] = list(match.rule.techniques)
    sys.stdout.write(orjson.dumps(record, default=str).decode() + "\n")


def run_lint(args: argparse.Namespace) -> int:
    from sigma.rule import SigmaRule
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators

    from rules.loader import RuleSource, read_sources

    objects, errors = read_sources(RuleSource(path) for path in args.paths)
    by_file: dict[str, list[str]] = {}
    for error in errors:
        label = f" ({error.rule})" if error.rule else ""
        by_file.setdefault(error.file, []).append(f"error{label}: {error.reason}")
    skipped = OFFLINE_SKIPPED | set(args.skip)
    if args.attack_data is not None:
        from sigma.data import mitre_attack

        mitre_attack.set_url(str(args.attack_data))
        skipped.discard("attacktag")
    unknown = set(args.skip) - set(validators)
    if unknown:
        print(f"unknown validator(s): {', '.join(sorted(unknown))}; known: "
              f"{', '.join(sorted(validators))}", file=sys.stderr)
        return 2
    validator = SigmaValidator(v for name, v in validators.items() if name not in skipped)
    rules = [obj for obj, _ in objects if isinstance(obj, SigmaRule)]
    issues = validator.validate_rules(iter(rules))
    for issue in issues:
        for rule in issue.rules:
            source = getattr(rule, "source", None)
            file = str(source.path) if source is not None and source.path else str(rule.id)
            by_file.setdefault(file, []).append(_issue_text(issue))
    for file in sorted(by_file):
        print(file)
        # pySigma keeps its validators in a set: sort so the output is stable between runs
        for line in sorted(by_file[file]):
            print(f"  {line}")
    print(f"{len(rules)} rule(s) checked, {len(errors)} error(s), {len(issues)} issue(s)")
    return 1 if errors else 0


def _issue_text(issue: Any) -> str:
    from dataclasses import fields

    details = ", ".join(f"{f.name}={_short(getattr(issue, f.name))}" for f in fields(issue)
                        if f.name != "rules")
    severity = issue.severity.name.lower()
    text = f"{severity}: {type(issue).__name__}: {issue.description}"
    return f"{text} ({details})" if details else text


def _short(value: Any) -> str:
    """A detail value for humans: detection items by field and values, long reprs cut."""
    from sigma.rule import SigmaDetectionItem

    if isinstance(value, SigmaDetectionItem):
        text = f"{value.field}: {[str(v) for v in value.value]}"
    else:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
