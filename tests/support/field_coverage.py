"""Field quality of the shipped pipelines: per dataset, the share of events carrying each field
that the dataset's rules read (the built-in library's rules and correlations, and SigmaHQ's when
../shared/data/sigma is present), over every `vigil test` case of conf.d and, where there are
some, public regression events put through the same pipelines (loghub's OpenSSH and Apache logs
over syslog, SigmaHQ's regression events as EVTX JSON over tcp_json).

    PYTHONPATH=.:tests python -m support.field_coverage [--all]

A field no event carries is a rule that never activates (coverage.activation); `--all` lists
every field instead of the ten read by most rules per dataset; `--summary` prints one line per
dataset.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from collector.config import VigilConfig, load_config
from collector.detection.stage import rule_sources
from collector.offline import OfflineRun, split_dead_letters
from core.events import DATASET, Event
from parsers.windows import iter_json_documents
from rules.coverage import correlation_requirements
from rules.loader import RuleSource, load_rules
from support.daemon import REPO, SHARED_DATA

CONF = REPO / "conf.d"
SIGMA = SHARED_DATA / "sigma"
LOGHUB = SHARED_DATA / "loghub"
SIGMA_RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
LOGHUB_FILES = ("OpenSSH/OpenSSH_2k.log", "Apache/Apache_2k.log")
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


def _by_dataset(events: Iterable[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        out[str(event.get(DATASET))].append(event)
    return out


def case_events(config: VigilConfig, conf: Path = CONF) -> dict[str, list[Event]]:
    """Every output event of the conf.d's `vigil test` cases, by dataset."""
    now = {"value": RECEIVED}
    offline = OfflineRun(config, conf, clock=lambda: now["value"])
    events: list[Event] = []
    try:
        for case in config.section("tests").values():
            now["value"] = case.received_at or RECEIVED
            out, _ = split_dead_letters(offline.process_lines(
                case.source, [case.line()], tenant=case.tenant, peer=case.peer))
            events += out
    finally:
        offline.close()
    return _by_dataset(events)


def regression_events(config: VigilConfig, conf: Path = CONF) -> dict[str, list[Event]]:
    """loghub's logs over syslog_tcp and SigmaHQ's regression events over tcp_json, through
    the pipelines (empty when ../shared/data is absent)."""
    offline = OfflineRun(config, conf, clock=lambda: RECEIVED)
    events: list[Event] = []
    try:
        for name in LOGHUB_FILES:
            path = LOGHUB / name
            if path.is_file():
                lines = path.read_bytes().splitlines()
                events += split_dead_letters(offline.process_lines("syslog_tcp", lines))[0]
        regression = SIGMA / "regression"
        if regression.is_dir():
            for path in sorted(regression.rglob("*.json")):
                lines = [orjson.dumps(doc) for doc in iter_json_documents(path.read_bytes())]
                events += split_dead_letters(offline.process_lines("tcp_json", lines))[0]
    finally:
        offline.close()
    return _by_dataset(events)


def rule_fields(config: VigilConfig, conf: Path = CONF,
                sigmahq: bool = True) -> dict[str, Counter[str]]:
    """Dataset -> field -> how many rules (and correlations) read it."""
    sources = list(rule_sources(config, conf))
    if sigmahq and (SIGMA / "rules").is_dir():
        sources += [RuleSource(SIGMA / name) for name in SIGMA_RULE_DIRS]
    ruleset = load_rules(sources)
    singles = ruleset.requirements()
    requirements = singles + correlation_requirements(ruleset.correlations, singles)
    read: dict[str, Counter[str]] = defaultdict(Counter)
    for requirement in requirements:
        for dataset, fields in requirement.fields.items():
            read[dataset].update(fields)
    return read


@dataclass
class Row:
    dataset: str
    field: str
    rules: int
    case_events: int
    case_share: float | None
    regression_events: int
    regression_share: float | None


def _share(field: str, events: list[Event]) -> float | None:
    if not events:
        return None
    return sum(1 for e in events if e.get(field) not in (None, "", [])) / len(events)


def coverage_rows(read: dict[str, Counter[str]], cases: dict[str, list[Event]],
                  regression: dict[str, list[Event]], limit: int | None = 10) -> list[Row]:
    """One row per (dataset, field read by its rules), the most-read fields first."""
    rows = []
    for dataset in sorted(read):
        ranked = read[dataset].most_common()
        for field, rules in ranked if limit is None else ranked[:limit]:
            rows.append(Row(dataset, field, rules, len(cases.get(dataset, [])),
                            _share(field, cases.get(dataset, [])),
                            len(regression.get(dataset, [])),
                            _share(field, regression.get(dataset, []))))
    return rows


def render(rows: list[Row], read: dict[str, Counter[str]]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    out = [f"{'dataset':<20} {'field':<48} {'rules':>5} {'cases':>12} {'regression':>14}"]
    last = None
    for row in rows:
        if row.dataset != last:
            total = len(read[row.dataset])
            out.append(f"{row.dataset} ({total} fields read; cases n={row.case_events}, "
                       f"regression n={row.regression_events})")
            last = row.dataset
        out.append(f"{'':<20} {row.field[:48]:<48} {row.rules:>5} {pct(row.case_share):>12} "
                   f"{pct(row.regression_share):>14}")
    return "\n".join(out) + "\n"


def summary(read: dict[str, Counter[str]], cases: dict[str, list[Event]],
            regression: dict[str, list[Event]]) -> str:
    """One line per dataset: fields its rules read, how many some event carries, the share of
    rule-field reads an event can satisfy (weighted by rules), and fields no event carries."""
    out = [f"{'dataset':<20} {'events':>11} {'fields':>6} {'carried':>7} {'weighted':>8}  "
           "never carried (rules reading it)"]
    for dataset in sorted(read):
        events = cases.get(dataset, []) + regression.get(dataset, [])
        fields = read[dataset]
        carried = {f for f in fields if _share(f, events)}
        weighted = sum(n for f, n in fields.items() if f in carried) / sum(fields.values())
        missing = ", ".join(f"{f} ({n})" for f, n in fields.most_common() if f not in carried)
        counts = f"{len(cases.get(dataset, []))}+{len(regression.get(dataset, []))}"
        out.append(f"{dataset:<20} {counts:>11} {len(fields):>6} {len(carried):>7} "
                   f"{weighted:>8.0%}  {missing[:150]}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    config = load_config(CONF)
    read = rule_fields(config)
    cases, regression = case_events(config), regression_events(config)
    if "--summary" in argv:
        sys.stdout.write(summary(read, cases, regression))
        return 0
    rows = coverage_rows(read, cases, regression, limit=None if "--all" in argv else 10)
    sys.stdout.write(render(rows, read))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
