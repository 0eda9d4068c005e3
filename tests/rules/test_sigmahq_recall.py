"""The whole SigmaHQ set (rules, emerging threats, threat hunting) against SigmaHQ's regression
events: each rule named in a regression info.yml must fire on its paired JSON event, and the
indexed engine must return exactly what evaluating every rule on every event returns.

The rule set is loaded once per module (about 10-15 s on this machine); the module runs in about
20 s. Skips when ../shared/data is absent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.daemon import SHARED_DATA

from parsers.windows import flatten_windows_event, iter_json_documents
from rules.engine import DetectionEngine
from rules.loader import load_rules

SIGMA = SHARED_DATA / "sigma"
REGRESSION = SIGMA / "regression"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")

pytestmark = pytest.mark.skipif(not (SIGMA / "rules").is_dir() or not REGRESSION.is_dir(),
                                reason=f"SigmaHQ data not found under {SIGMA}")


@dataclass
class Case:
    info: Path
    rule_id: str
    title: str
    event_file: Path | None
    events: list[dict]


def regression_cases() -> list[Case]:
    cases = []
    for info in sorted(REGRESSION.rglob("info.yml")):
        meta = yaml.safe_load(info.read_text(encoding="utf-8"))
        rule = meta["rule_metadata"][0]
        tests = meta.get("regression_tests_info") or []
        event_file = None
        for test in tests:  # the test names the .evtx; the event is its .json sibling
            candidate = REGRESSION / Path(test["path"]).with_suffix(".json")
            if candidate.exists():
                event_file = candidate
        if event_file is None:
            found = sorted(info.parent.glob("*.json"))
            event_file = found[0] if found else None
        events = []
        if event_file is not None:
            events = [flatten_windows_event(doc)
                      for doc in iter_json_documents(event_file.read_bytes())]
        cases.append(Case(info, str(rule["id"]), rule["title"], event_file, events))
    return cases


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rule-cache")


@pytest.fixture(scope="module")
def engine(cache_dir: Path) -> Iterator[DetectionEngine]:
    started = time.perf_counter()
    ruleset = load_rules([SIGMA / name for name in RULE_DIRS], cache_dir=cache_dir)
    print(f"\nloaded {len(ruleset.rules)} rules ({len(ruleset.unserved)} with no dataset, "
          f"{len(ruleset.errors)} errors) in {time.perf_counter() - started:.1f} s")
    yield DetectionEngine(ruleset)


def test_every_regression_rule_fires_on_its_event(engine: DetectionEngine) -> None:
    cases = regression_cases()
    assert len(cases) >= 100
    without_event = [c for c in cases if not c.events]
    # Explicitly accounted for: SigmaHQ's cisco_cli_dot1x_disabled has its test commented out
    # and ships no event, so that rule cannot be checked here.
    assert [c.info.parent.name for c in without_event] == ["cisco_cli_dot1x_disabled"]
    hits, misses, others = 0, [], 0
    for case in cases:
        if not case.events:
            continue
        fired = {m.rule_id for m in engine.evaluate("windows.event", case.events, "regression")}
        if case.rule_id in fired:
            hits += 1
        else:
            misses.append(f"{case.rule_id} {case.title} ({case.event_file})")
        others += len(fired - {case.rule_id})
    checked = len(cases) - len(without_event)
    print(f"\nrecall {hits}/{checked} ({100 * hits / checked:.1f}%); "
          f"{len(without_event)} case(s) without an event; "
          f"{others} other rule firings on the same events")
    assert misses == []


def synthetic_events() -> list[dict]:
    """Benign and odd Windows events the regression set lacks (non-Sysmon channels, UserData)."""
    return [
        {"winlog.channel": "Security", "winlog.event_id": 4688,
         "winlog.event_data.NewProcessName": "C:\\Windows\\System32\\whoami.exe",
         "winlog.event_data.CommandLine": "whoami /priv",
         "winlog.event_data.ParentProcessName": "C:\\Windows\\System32\\cmd.exe"},
        {"winlog.channel": "Security", "winlog.event_id": 1102,
         "winlog.provider_name": "Microsoft-Windows-Eventlog",
         "winlog.user_data.SubjectUserName": "admin"},
        {"winlog.channel": "System", "winlog.event_id": 7045,
         "winlog.provider_name": "Service Control Manager",
         "winlog.event_data.ServiceName": "PSEXESVC",
         "winlog.event_data.ImagePath": "%SystemRoot%\\PSEXESVC.exe"},
        {"winlog.channel": "Microsoft-Windows-PowerShell/Operational", "winlog.event_id": 4104,
         "winlog.event_data.ScriptBlockText": "IEX (New-Object Net.WebClient).DownloadString('x')"},
    ]


def test_index_returns_what_evaluating_every_rule_returns(engine: DetectionEngine) -> None:
    """The literal index only skips rules that cannot match: compare with a full scan."""
    events = [e for case in regression_cases() for e in case.events] + synthetic_events()
    index = engine.indexes["windows.event"]
    indexed = {(m.events[0].index, m.rule_id)
               for m in engine.evaluate("windows.event", events, "parity")}
    brute = set()
    for position, original in enumerate(events):
        event = index.view(original)
        lowered = {k: v.lower() for k, v in event.items() if isinstance(v, str)}
        for rule, predicate in zip(index.rules, index.predicates, strict=True):
            if predicate(event, lowered) and rule.emits:
                brute.add((position, rule.info.id))
    assert indexed == brute
    assert len(brute) > len(events)  # the comparison is not vacuous
    fired_synthetic = {rule for pos, rule in brute if pos >= len(events) - 4}
    assert fired_synthetic, "the synthetic events should trip at least one SigmaHQ rule"


# Logsources no shipped dataset serves, and why (issue 17: at most 116 of 3,754 may be left).
UNSERVED_REASONS: dict[tuple[str | None, str | None, str | None], str] = {
    **{(product, "application", None): "application framework logs in the framework's own "
       "text format: no pipeline parses them" for product in
       ("jvm", "spring", "django", "nodejs", "python", "ruby_on_rails", "sql", "velocity")},
    (None, "database", None): "database query logs: no pipeline parses them",
    ("windows", "file_rename", None): "rename events come from the Kernel-File ETW provider, "
                                      "which no shipped Windows channel carries",
    ("huawei", None, "bgp"): "Huawei VRP syslog: no pipeline",
    ("juniper", None, "bgp"): "Junos syslog: no pipeline",
    ("windows", None, None): "a keyword search over any Windows log: windows.event has no "
                             "message text to search",
    ("paloalto", "file_event", "globalprotect"): "the GlobalProtect client's own file events: "
                                                 "no pipeline reads endpoint agent logs",
}
SERVED_AT_LEAST = 3088 + 550  # issue 17's target: today's 3,088 plus 550


def test_sigmahq_rules_are_served_by_a_dataset(engine: DetectionEngine) -> None:
    """Every SigmaHQ rule loads; at least 3,638 of them have a dataset serving their logsource,
    and each one left has its logsource's reason listed above."""
    ruleset = engine.ruleset
    # A rule whose `|expand` placeholders have no configured value is served but inactive.
    inactive = {i.info.id for i in ruleset.inactive}
    assert all("placeholder" in i.reason for i in ruleset.inactive)
    served, unserved = len(ruleset.rules) + len(inactive), ruleset.unserved
    total = served + len(unserved) + len({e.rule for e in ruleset.errors})
    by_logsource: dict[tuple[str | None, str | None, str | None], int] = {}
    for info in unserved:
        key = (info.product, info.category, info.service)
        by_logsource[key] = by_logsource.get(key, 0) + 1
    print(f"\nserved {served} of {total} SigmaHQ rules ({len(inactive)} inactive for want of "
          f"placeholder values); {len(unserved)} unserved:")
    for key, count in sorted(by_logsource.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d} {key}: {UNSERVED_REASONS.get(key, 'NO REASON GIVEN')}")
    assert ruleset.errors == []
    assert served >= SERVED_AT_LEAST, f"only {served} of {total} served"
    assert [key for key in by_logsource if key not in UNSERVED_REASONS] == []


def test_the_warm_cache_serves_the_same_rules_and_matches(engine: DetectionEngine,
                                                          cache_dir: Path) -> None:
    """A second load takes every file from the cache (written by the module's load) and its
    engine returns exactly the first one's matches on every regression and synthetic event."""
    started = time.perf_counter()
    warm = load_rules([SIGMA / name for name in RULE_DIRS], cache_dir=cache_dir)
    print(f"\nwarm load of {len(warm.rules)} rules in {time.perf_counter() - started:.1f} s")
    assert warm.cache is not None and warm.cache.misses == 0 and warm.cache.invalid == 0
    assert warm.cache.hits == engine.ruleset.cache.misses  # type: ignore[union-attr]
    assert [r.info for r in warm.rules] == [r.info for r in engine.ruleset.rules]
    assert len(warm.unserved) == len(engine.ruleset.unserved)
    assert [i.info.id for i in warm.inactive] == [i.info.id for i in engine.ruleset.inactive]
    events = [e for case in regression_cases() for e in case.events] + synthetic_events()

    def fired(detection: DetectionEngine) -> list[tuple[int, str]]:
        return sorted((m.events[0].index, m.rule_id)
                      for m in detection.evaluate("windows.event", events, "parity"))

    cold_matches = fired(engine)
    assert fired(DetectionEngine(warm)) == cold_matches and len(cold_matches) > len(events)
