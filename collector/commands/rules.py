"""`vigil rules test` (Sigma rules over event files) and `vigil rules lint` (pySigma validators).

`rules test` prints one JSON line per alert and ends with a summary on stderr (events per
dataset, rules, matches per rule). An event's dataset is `--dataset` when given, else its own
`vigil.dataset` (what `vigil process` writes), else `windows.event` for files in the
EVTX-as-JSON shape. Exit status: 0, or 1 when a rule or an event file could not be loaded
(reported on stderr, the rest still runs), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from collector.progress import add_progress_flag

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
                      help="dataset of every event (e.g. linux.auth); default: each event's "
                           "`vigil.dataset`, as `vigil process` writes it")
    test.add_argument("--tenant", default=None,
                      help="tenant the events are evaluated for (default: cli, or the "
                           "source's routing with --source)")
    test.add_argument("--source", default=None, metavar="SOURCE_ID",
                      help="the files hold raw lines arriving on this source of the -c "
                           "configuration: they go through its routing and pipelines first")
    test.set_defaults(func=run_test)

    backtest = commands.add_parser(
        "backtest", parents=[common],
        help="what rules would have fired on a tenant's lake (DuckDB scans, same evaluators)")
    backtest.add_argument("--tenant", required=True)
    backtest.add_argument("--since", default="7d", metavar="DURATION",
                          help="how far back, e.g. 24h, 7d (default 7d)")
    backtest.add_argument("--alerts", action="store_true",
                          help="print every alert as a JSON line before the summary")
    backtest.add_argument("rules", nargs="+", type=Path, metavar="RULE",
                          help="Sigma rule files or directories to try")
    add_progress_flag(backtest)
    backtest.set_defaults(func=run_backtest)

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
    """Events of one file; EVTX-as-JSON documents become `windows.event` events; others take
    `dataset`, else their own `vigil.dataset`."""
    from parsers.windows import flatten_windows_event, is_windows_event, iter_json_documents

    index = 0
    for document in iter_json_documents(path.read_bytes()):
        for item in document if isinstance(document, list) else [document]:
            if not isinstance(item, dict):
                raise ValueError(f"event {index} is a {type(item).__name__}, not an object")
            if is_windows_event(item):
                yield FileEvent(str(path), index, WINDOWS_DATASET, flatten_windows_event(item))
            else:
                own = item.get("vigil.dataset")
                yield FileEvent(str(path), index,
                                dataset or (own if isinstance(own, str) and own else None), item)
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
    summary = TestSummary()
    offline = _offline(args) if args.source else None
    if args.source and offline is None:
        return 78
    for path in args.events:
        try:
            events = (list(_through_pipelines(offline, args, path)) if offline is not None
                      else list(read_event_file(path, args.dataset)))
        except (OSError, ValueError) as exc:
            reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else exc
            print(f"{path}: {reason}", file=sys.stderr)
            failed = True
            continue
        missing = [e.index for e in events if e.dataset is None]
        if missing:
            print(f"{path}: {len(missing)} event(s) have no `vigil.dataset`, are not "
                  f"EVTX-as-JSON and no --dataset was given (first: event {missing[0]})",
                  file=sys.stderr)
            failed = True
        for dataset, group in _runs(e for e in events if e.dataset is not None):
            offsets = list(range(len(seen), len(seen) + len(group)))
            seen.extend(group)
            tenant = args.tenant or str(group[0].event.get("vigil.tenant") or "cli")
            summary.datasets[dataset] += len(group)
            matches = engine.evaluate(dataset, [e.event for e in group], tenant, offsets)
            for match in matches:
                summary.matched(match)
                _print_match(match, [seen[ref.offset] for ref in match.events
                                     if ref.offset is not None])
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    for match in engine.correlation.flush(now=far_future):
        summary.matched(match)
        _print_match(match, [seen[ref.offset] for ref in match.events if ref.offset is not None])
    summary.report(len(ruleset.rules) + len(ruleset.correlations), len(ruleset.errors))
    return 1 if failed else 0


@dataclass
class TestSummary:
    """What `rules test` ends with on stderr: events per dataset, rules, matches per rule."""

    datasets: Counter[str] = field(default_factory=Counter)
    matches: Counter[tuple[str, str]] = field(default_factory=Counter)

    def matched(self, match: Any) -> None:
        self.matches[(match.rule_id, match.title)] += 1

    def report(self, rules: int, failed_rules: int) -> None:
        events = sum(self.datasets.values())
        per_dataset = ", ".join(f"{name} {count}" for name, count in sorted(self.datasets.items()))
        lines = [f"{events} event(s) ({per_dataset or 'none evaluated'}), {rules} rule(s) loaded"
                 f"{f', {failed_rules} failed' if failed_rules else ''}, "
                 f"{sum(self.matches.values())} match(es) from {len(self.matches)} rule(s)"]
        lines += [f"  {count:6d}  {rule_id}  {title}"
                  for (rule_id, title), count in sorted(self.matches.items(),
                                                        key=lambda kv: (-kv[1], kv[0]))]
        print("\n".join(lines), file=sys.stderr)


def _offline(args: argparse.Namespace) -> Any:
    """The -c configuration built for offline runs; None (errors printed) when invalid."""
    from collector.cli import load_or_report
    from collector.offline import OfflineRun

    config = load_or_report(args)
    return None if config is None else OfflineRun(config, args.config_dir)


def _through_pipelines(offline: Any, args: argparse.Namespace, path: Path
                       ) -> Iterator[FileEvent]:
    """The file's lines as events of the pipelines they went through; the index is the line's
    position among the file's non-empty lines (dead letters are reported on stderr)."""
    from collector.offline import split_dead_letters

    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    batches = offline.process_lines(args.source, lines, tenant=args.tenant)
    events, dead = split_dead_letters(batches)
    for record in dead:
        print(f"{path}: dead letter at {record.get('pipeline')}/{record.get('step')}: "
              f"{record.get('error')}", file=sys.stderr)
    first = min((int(e.get("vigil.offset", 0)) for e in events), default=0)
    for event in events:
        yield FileEvent(str(path), int(event.get("vigil.offset", first)) - first,
                        event.get("vigil.dataset"), event)


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


def run_backtest(args: argparse.Namespace) -> int:
    """Rules over one tenant's lake; the last line on stdout is a JSON summary, on stderr one
    for people (events, rate, matches, alerts)."""
    import time

    from collector.cli import EX_CONFIG, load_or_report
    from collector.detection.backtest import backtest, events_to_scan, summary
    from collector.progress import progress, progress_wanted
    from core.config import is_tenant_id, parse_duration
    from core.errors import unknown_name, usage_error
    from rules.loader import load_rules
    from sinks.lake.sink import lake_root

    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise usage_error(f"--since: {exc}") from None
    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    if not is_tenant_id(args.tenant) or args.tenant not in config.tenants:
        raise unknown_name("tenant", args.tenant, config.tenants)
    ruleset = load_rules(args.rules)
    for problem in ruleset.errors:
        print(f"{problem}", file=sys.stderr)
    lake = lake_root(config.data_dir(args.data_dir), config.sinks.values())
    now = datetime.now(UTC)
    detection = config.settings.detection
    started = time.monotonic()
    # Counting first costs a pass over the timestamps: only for a bar someone sees.
    total = (events_to_scan(ruleset, lake, args.tenant, now - since)
             if progress_wanted(args.progress) else None)
    with progress("backtest", total or None, unit="events", enabled=args.progress) as advance:
        result = backtest(ruleset, lake, args.tenant, now - since, now, detection.suppression,
                          detection.max_alert_events, advance)
    seconds = time.monotonic() - started
    if args.alerts:
        for alert in sorted(result.alerts.values(), key=lambda a: str(a["alert.first_seen"])):
            sys.stdout.write(orjson.dumps(alert, default=str).decode() + "\n")
    totals = summary(result)
    if not any(totals.get("events_scanned", {}).values()):
        print(f"no events of tenant {args.tenant} in {lake} since {(now - since).isoformat()} "
              "(is that where the daemon writes? give its --data-dir)", file=sys.stderr)
    rules = len(ruleset.rules) + len(ruleset.correlations)
    scanned = sum(result.events.values())
    print(f"backtest: {scanned} event(s) of tenant {args.tenant} in {seconds:.1f} s "
          f"({scanned / seconds if seconds > 0 else 0:,.0f}/s), {rules} rule(s), "
          f"{sum(result.matches.values())} match(es), {len(result.alerts)} alert(s)",
          file=sys.stderr)
    sys.stdout.write(orjson.dumps({"tenant": args.tenant, "since": (now - since).isoformat(),
                                   "rules": rules, **totals}).decode() + "\n")
    return 1 if ruleset.errors else 0
