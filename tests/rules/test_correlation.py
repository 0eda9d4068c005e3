"""Sigma correlation rules over event time: counts, distinct values, temporal order, late events,
state caps, tenant isolation and save/restore. Event times are set in the events; the clock is
injected (it only stamps saved state here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from rules.correlation.engine import CorrelationEngine
from rules.engine import DetectionEngine
from rules.loader import load_rules

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAILED = "aaaaaaaa-0000-4000-8000-000000000001"
SUCCESS = "aaaaaaaa-0000-4000-8000-000000000002"


def base_rules() -> list[dict[str, Any]]:
    auth = {"product": "linux", "service": "auth"}
    return [
        {"title": "Failed login", "id": FAILED, "name": "failed_login", "logsource": auth,
         "detection": {"sel": {"outcome": "failure"}, "condition": "sel"}, "level": "low"},
        {"title": "Successful login", "id": SUCCESS, "name": "success_login", "logsource": auth,
         "detection": {"sel": {"outcome": "success"}, "condition": "sel"}, "level": "low"},
    ]


def correlation(kind: str, rules: list[str], **extra: Any) -> dict[str, Any]:
    body = {"type": kind, "rules": rules, "timespan": extra.pop("timespan", "1m"), **extra}
    return {"title": f"{kind} correlation", "id": "bbbbbbbb-0000-4000-8000-000000000001",
            "level": "high", "tags": ["attack.credential-access", "attack.t1110.001"],
            "correlation": body}


def build(sigma: SimpleNamespace, tmp_path: Path, corr: dict[str, Any], **kwargs: Any
          ) -> DetectionEngine:
    sigma.write_docs(tmp_path, "rules", *base_rules(), corr)
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    engine = CorrelationEngine(ruleset.correlations, clock=lambda: T0, **kwargs)
    return DetectionEngine(ruleset, correlation=engine)


def login(seconds: float, user: str, outcome: str = "failure", ip: str = "10.0.0.1",
          **extra: Any) -> dict[str, Any]:
    return {"@timestamp": T0 + timedelta(seconds=seconds), "user.name": user,
            "event.outcome": outcome, "source.ip": ip, **extra}


def correlations(matches: list[Any]) -> list[Any]:
    return [m for m in matches if m.rule.kind != "rule"]


def run(engine: DetectionEngine, events: list[dict[str, Any]], tenant: str = "t1") -> list[Any]:
    """Feed events one batch at a time (as a stream), return the correlation matches."""
    out = []
    for event in events:
        out.extend(correlations(engine.evaluate("linux.auth", [event], tenant)))
    return out


def test_event_count_groups_by_user(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                **{"group-by": ["user"]},
                                                condition={"gte": 3}))
    events = [login(0, "alice"), login(5, "bob"), login(10, "alice"), login(20, "bob"),
              login(30, "alice"), login(31, "alice", outcome="success")]
    matches = run(engine, events)
    assert [(m.group_key, m.value) for m in matches] == [({"user": "alice"}, 3)]
    match = matches[0]
    assert [ref.timestamp for ref in match.events] == [T0, T0 + timedelta(seconds=10),
                                                       T0 + timedelta(seconds=30)]
    assert (match.first_seen, match.last_seen) == (T0, T0 + timedelta(seconds=30))
    assert match.rule.tactics == ("credential-access",)
    assert match.rule.techniques == ("T1110.001",)
    assert match.dedup_key.startswith(f"t1|{match.rule_id}|")


def test_event_count_outside_timespan_does_not_fire(sigma: SimpleNamespace,
                                                    tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                **{"group-by": ["user"]},
                                                condition={"gte": 3}))
    assert run(engine, [login(0, "alice"), login(40, "alice"), login(70, "alice")]) == []
    # a fourth within a minute of the last two completes a window
    assert [m.value for m in run(engine, [login(90, "alice")])] == [3]


def test_window_is_cleared_after_firing(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                condition={"gte": 2}))
    matches = run(engine, [login(s, "u") for s in (0, 1, 2, 3, 4)])
    assert [m.value for m in matches] == [2, 2]  # events 0+1, then 2+3; event 4 waits


def test_event_count_weighs_folded_lines(sigma: SimpleNamespace, tmp_path: Path) -> None:
    """A line syslogd folded (`message repeated 4 times: [ ... ]`, event.count 4) stands for
    that many events: it counts as 4 toward an event_count, and survives a save/restore."""
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                **{"group-by": ["user"]},
                                                condition={"gte": 5}))
    assert run(engine, [login(0, "alice", **{"event.count": 4})]) == []
    state = engine.correlation.dump()
    restored = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                  **{"group-by": ["user"]},
                                                  condition={"gte": 5}))
    assert restored.correlation.load(state) == 1
    matches = run(restored, [login(5, "alice")])
    assert [(m.group_key, m.value) for m in matches] == [({"user": "alice"}, 5)]
    # a count that is not a positive number weighs one
    assert run(restored, [login(10, "bob", **{"event.count": "many"}),
                          login(11, "bob", **{"event.count": -3})]) == []


def test_value_count_distinct_users_per_source(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation(
        "value_count", ["failed_login"], **{"group-by": ["src_ip"]},
        condition={"field": "user", "gte": 3}, timespan="5m"))
    events = [login(0, "a", ip="1.1.1.1"), login(1, "a", ip="1.1.1.1"),
              login(2, "b", ip="1.1.1.1"), login(3, "c", ip="2.2.2.2"),
              login(4, "c", ip="1.1.1.1")]
    matches = run(engine, events)
    assert [(m.group_key, m.value) for m in matches] == [({"src_ip": "1.1.1.1"}, 3)]


def test_temporal_any_order(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation(
        "temporal", ["failed_login", "success_login"], **{"group-by": ["user"]},
        timespan="5m"))
    matches = run(engine, [login(0, "alice", "success"), login(10, "bob"),
                           login(20, "alice", "failure")])
    assert [(m.group_key, m.value) for m in matches] == [({"user": "alice"}, 2)]


def test_temporal_ordered_needs_the_order(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation(
        "temporal_ordered", ["failed_login", "success_login"], **{"group-by": ["user"]},
        timespan="5m"))
    assert run(engine, [login(0, "alice", "success"), login(10, "alice", "failure")]) == []
    matches = run(engine, [login(20, "bob", "failure"), login(30, "bob", "success")])
    assert [m.group_key for m in matches] == [{"user": "bob"}]
    # the success too long after the failure: no match
    assert run(engine, [login(40, "carol", "failure"), login(400, "carol", "success")]) == []
    # many failures, then the success: the window's failures are found whatever their number;
    # after the old failures left the window (and the bucket), a success alone does not match
    failures = [login(500 + i, "dave", "failure") for i in range(200)]
    assert [m.group_key for m in run(engine, [*failures, login(800, "dave", "success")])] \
        == [{"user": "dave"}]
    assert run(engine, [login(900, "erin", "failure"), login(2000, "erin", "failure"),
                        login(2001, "erin", "success")]) != []
    assert run(engine, [login(3000, "fay", "failure"), login(4000, "fay", "success")]) == []


def test_aliases_map_a_group_field_per_rule(sigma: SimpleNamespace, tmp_path: Path) -> None:
    corr = correlation("temporal", ["failed_login", "success_login"], **{"group-by": ["who"]},
                       timespan="5m")
    corr["correlation"]["aliases"] = {"who": {"failed_login": "user", "success_login": "hostname"}}
    engine = build(sigma, tmp_path, corr)
    events = [login(0, "alice"), login(5, "zed", "success", **{"host.hostname": "alice"})]
    assert [m.group_key for m in run(engine, events)] == [{"who": "alice"}]


def test_late_events_within_and_beyond_tolerance(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                condition={"gte": 3}),
                   lateness=timedelta(seconds=60))
    assert run(engine, [login(100, "u"), login(110, "u")]) == []
    # 70 s is 40 s behind the watermark (110): within tolerance, it completes the window
    assert [m.value for m in run(engine, [login(70, "u")])] == [3]
    assert engine.correlation.stats["late_dropped"] == 0
    # 30 s is 80 s behind: dropped and counted
    assert run(engine, [login(30, "u"), login(111, "u"), login(112, "u")]) == []
    assert engine.correlation.stats["late_dropped"] == 1


def test_key_cap_evicts_least_recent(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                **{"group-by": ["user"]}, condition={"gte": 2}),
                   max_keys=2)
    assert run(engine, [login(0, "a"), login(1, "b"), login(2, "c")]) == []
    assert engine.correlation.stats["evicted_keys"] == 1
    assert engine.correlation.key_count("t1") == 2
    # "a" was evicted: its earlier failure is gone; "b" still completes
    assert run(engine, [login(3, "a")]) == []
    assert [m.group_key for m in run(engine, [login(4, "c")])] == [{"user": "c"}]


def test_expired_keys_are_dropped(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                **{"group-by": ["user"]}, condition={"gte": 5}),
                   lateness=timedelta(seconds=10))
    run(engine, [login(0, "a"), login(1, "b")])
    assert engine.correlation.flush(now=T0 + timedelta(seconds=30)) == []
    assert engine.correlation.key_count() == 2  # 1m window + 10 s lateness not over yet
    engine.correlation.flush(now=T0 + timedelta(seconds=200))
    assert engine.correlation.key_count() == 0
    assert engine.correlation.stats["expired_keys"] == 2


def test_lt_condition_fires_when_the_window_closes(sigma: SimpleNamespace,
                                                   tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["success_login"],
                                                **{"group-by": ["user"]}, condition={"lt": 2}),
                   lateness=timedelta(seconds=0))
    assert run(engine, [login(0, "a", "success"), login(1, "b", "success"),
                        login(2, "b", "success")]) == []
    closed = engine.correlation.flush(now=T0 + timedelta(seconds=120))
    assert [(m.group_key, m.value) for m in closed] == [({"user": "a"}, 1)]


def test_tenants_keep_separate_windows(sigma: SimpleNamespace, tmp_path: Path) -> None:
    """Four failures of alice: all in one tenant fire at the third; split 3/1 only the tenant
    with three fires; split 2/2 nothing fires."""
    corr = correlation("event_count", ["failed_login"], **{"group-by": ["user"]},
                       condition={"gte": 3})
    events = [login(s, "alice") for s in (0, 1, 2, 3)]

    (tmp_path / "a").mkdir()
    together = build(sigma, tmp_path / "a", corr)
    assert [(m.tenant, m.value) for m in run(together, events, "x")] == [("x", 3)]

    (tmp_path / "b").mkdir()
    split = build(sigma, tmp_path / "b", corr)
    out = []
    for event, tenant in zip(events, ["x", "y", "x", "x"], strict=True):
        out.extend(run(split, [event], tenant))
    assert [(m.tenant, m.value) for m in out] == [("x", 3)]
    assert split.correlation.key_count("y") == 1

    (tmp_path / "c").mkdir()
    halves = build(sigma, tmp_path / "c", corr)
    out = []
    for event, tenant in zip(events, ["x", "y", "x", "y"], strict=True):
        out.extend(run(halves, [event], tenant))
    assert out == []


def test_save_and_restore_round_trip(sigma: SimpleNamespace, tmp_path: Path) -> None:
    corr = correlation("event_count", ["failed_login"], **{"group-by": ["user"]},
                       condition={"gte": 3})
    (tmp_path / "r").mkdir()
    first = build(sigma, tmp_path / "r", corr)
    assert run(first, [login(0, "alice"), login(1, "alice"), login(2, "bob")], "t1") == []
    state = tmp_path / "correlation-state.json"
    first.correlation.save(state)

    second = build(sigma, tmp_path / "r", corr)
    assert second.correlation.restore(state) == 2
    matches = run(second, [login(3, "alice")], "t1")
    assert [(m.group_key, m.value) for m in matches] == [({"user": "alice"}, 3)]
    assert [ref.timestamp for ref in matches[0].events][0] == T0
    # another tenant's identical event does not see t1's restored window
    assert run(second, [login(4, "bob")], "t2") == []


def test_restore_ignores_missing_file_and_unknown_rules(sigma: SimpleNamespace,
                                                        tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                condition={"gte": 3}))
    assert engine.correlation.restore(tmp_path / "absent.json") == 0
    other = CorrelationEngine([], clock=lambda: T0)
    engine.correlation.save(tmp_path / "s.json")
    run(engine, [login(0, "a")])
    engine.correlation.save(tmp_path / "s.json")
    assert other.restore(tmp_path / "s.json") == 0


@pytest.mark.parametrize(("kind", "condition", "expected"), [
    ("value_sum", {"field": "bytes", "gt": 100}, 120),
    ("value_avg", {"field": "bytes", "gte": 40}, 40),
    ("value_median", {"field": "bytes", "gte": 30}, 30),
    ("value_percentile", {"field": "bytes", "percentile": 90, "gte": 70}, 70),
])
def test_value_aggregates(sigma: SimpleNamespace, tmp_path: Path, kind: str,
                          condition: dict[str, Any], expected: float) -> None:
    engine = build(sigma, tmp_path, correlation(kind, ["failed_login"], condition=condition))
    events = [login(0, "u", bytes=20), login(1, "u", bytes=30), login(2, "u", bytes=70)]
    assert [m.value for m in run(engine, events)] == [expected]


def test_referenced_rule_without_generate_emits_nothing_alone(sigma: SimpleNamespace,
                                                              tmp_path: Path) -> None:
    engine = build(sigma, tmp_path, correlation("event_count", ["failed_login"],
                                                condition={"gte": 2}))
    single = [m for m in engine.evaluate("linux.auth", [login(0, "u"), login(1, "u", "success")],
                                         "t1") if m.rule.kind == "rule"]
    assert [m.rule_id for m in single] == [SUCCESS]  # failed_login feeds the correlation only


def test_unknown_reference_is_a_load_error(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_docs(tmp_path, "rules", *base_rules(),
                     correlation("event_count", ["no_such_rule"], condition={"gte": 2}))
    ruleset = load_rules([tmp_path])
    assert len(ruleset.errors) == 1
    assert "no_such_rule" in ruleset.errors[0].reason
    assert ruleset.errors[0].file.endswith("rules.yml")
    assert len(ruleset.rules) == 2


def test_tenant_correlation_silences_its_base_rule_only_for_its_tenant(
        sigma: SimpleNamespace, tmp_path: Path) -> None:
    from rules.loader import RuleSource

    library, tenant_dir = tmp_path / "library", tmp_path / "acme"
    library.mkdir()
    tenant_dir.mkdir()
    sigma.write_docs(library, "base", *base_rules())
    sigma.write_docs(tenant_dir, "corr", correlation("event_count", ["failed_login"],
                                                    condition={"gte": 2}))
    ruleset = load_rules([RuleSource(library), RuleSource(tenant_dir, tenant="acme")])
    engine = DetectionEngine(ruleset)
    events = [login(0, "u"), login(1, "u")]
    acme = engine.evaluate("linux.auth", events, "acme")
    other = engine.evaluate("linux.auth", events, "other")
    assert [m.rule.kind for m in acme] == ["event_count"]
    assert [m.rule_id for m in other] == [FAILED, FAILED]
    assert engine.correlation.key_count("other") == 0


def test_saved_state_round_trips_through_json_and_reads_the_earlier_list_form(
        sigma: SimpleNamespace, tmp_path: Path) -> None:
    """What `save` writes (entries as JSON objects) restores; so does a file of the earlier
    version, whose entries were lists `[ts, rule, value, ref, weight?]`."""
    spec = correlation("event_count", ["failed_login"], **{"group-by": ["user"]},
                       condition={"gte": 5})
    engine = build(sigma, tmp_path, spec)
    assert run(engine, [login(0, "alice", **{"event.count": 4})]) == []
    saved = orjson.loads(orjson.dumps(engine.correlation.dump(), default=str))
    legacy = orjson.loads(orjson.dumps(saved))
    for windows in legacy["tenants"].values():
        for groups in windows["windows"].values():
            for group in groups:
                group[2] = [[e["ts"], e["rule"], e["value"], e["ref"]]
                            + ([e["weight"]] if e["weight"] != 1 else []) for e in group[2]]
    for state in (saved, legacy):
        restored = build(sigma, tmp_path, spec)
        assert restored.correlation.load(state) == 1
        matches = run(restored, [login(5, "alice")])
        assert [(m.group_key, m.value) for m in matches] == [({"user": "alice"}, 5)]
        assert matches[0].events[0].timestamp is not None
