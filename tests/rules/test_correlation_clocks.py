"""Correlation under wrong clocks: event-time state per (tenant, sender), so one device stamped an
hour ahead neither drops nor delays the correlations of the tenant's other devices; its times
are judged against the receive clock, it is flagged, and the flag survives a save/restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rules.correlation.engine import CorrelationEngine
from rules.engine import DetectionEngine
from rules.loader import load_rules

T0 = datetime(2015, 12, 10, 6, 55, tzinfo=UTC)  # the OpenSSH loghub sample's first day
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when a replay of it is received
FAILED = "cccccccc-0000-4000-8000-000000000001"


def engine_for(sigma: SimpleNamespace, tmp_path: Path, **kwargs: Any) -> DetectionEngine:
    failed = {"title": "Failed login", "id": FAILED, "name": "failed_login",
              "logsource": {"product": "linux", "service": "auth"},
              "detection": {"sel": {"outcome": "failure"}, "condition": "sel"}, "level": "low"}
    brute = {"title": "Brute force", "id": "cccccccc-0000-4000-8000-000000000002",
             "level": "high", "correlation": {"type": "event_count", "rules": ["failed_login"],
                                              "group-by": ["source.ip"], "timespan": "2m",
                                              "condition": {"gte": 5}}}
    sigma.write_docs(tmp_path, "rules", failed, brute)
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    return DetectionEngine(ruleset, correlation=CorrelationEngine(
        ruleset.correlations, clock=lambda: NOW, **kwargs))


def failure(start: datetime, seconds: float, host: str, ip: str, *,
            received: datetime | None) -> dict[str, Any]:
    event = {"@timestamp": start + timedelta(seconds=seconds), "host.hostname": host,
             "event.outcome": "failure", "source.ip": ip, "user.name": "root"}
    if received is not None:
        event["vigil.received_at"] = received
    return event


def stream(start: datetime, received: datetime | None) -> list[dict[str, Any]]:
    """Two healthy hosts under attack from 40 addresses, six failures each ten seconds apart
    (one firing per address), the hosts interleaved: 40 minutes of event time."""
    events = []
    for step in range(240):
        seconds = step * 10.0
        host = "web1" if step % 2 else "web2"
        events.append(failure(start, seconds, host, f"10.0.0.{step // 6}", received=received
                              and received + timedelta(seconds=seconds)))
    return events


def fire(engine: DetectionEngine, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for event in events:
        for match in engine.evaluate("linux.auth", [event], "acme"):
            if match.rule.kind != "rule":
                out.append((match.group_key["source.ip"], match.last_seen))
    return out


def with_skewed_host(events: list[dict[str, Any]], at: int, received: datetime | None
                     ) -> list[dict[str, Any]]:
    """The same stream with one failure from another host stamped an hour ahead, mid-stream."""
    ahead = dict(events[at])
    ahead.update({"@timestamp": ahead["@timestamp"] + timedelta(hours=1),
                  "host.hostname": "db9", "source.ip": "192.0.2.99"})
    if received is not None:
        ahead["vigil.received_at"] = events[at]["vigil.received_at"]
    return [*events[:at], ahead, *events[at:]]


def test_a_host_an_hour_ahead_changes_no_other_firing_in_a_replay(
        sigma: SimpleNamespace, tmp_path: Path) -> None:
    """A replay (received years after the event times: the receive clock says nothing)."""
    events = stream(T0, NOW)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    baseline = fire(engine_for(sigma, tmp_path / "a"), events)
    assert len(baseline) == 40
    skewed = engine_for(sigma, tmp_path / "b")
    assert fire(skewed, with_skewed_host(events, 20, NOW)) == baseline
    assert skewed.correlation.stats["late_dropped"] == 0
    flagged = skewed.correlation.skewed_senders("acme")
    assert [(s.sender, s.basis) for s in flagged] == [("db9", "other senders")]
    assert 3500 < flagged[0].seconds <= 3600


def test_a_host_an_hour_ahead_is_judged_against_the_receive_clock(
        sigma: SimpleNamespace, tmp_path: Path) -> None:
    """Live traffic: received when stamped; the skewed host's time is clamped to its receipt."""
    events = stream(NOW, NOW)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    baseline = fire(engine_for(sigma, tmp_path / "a"), events)
    assert len(baseline) == 40
    skewed = engine_for(sigma, tmp_path / "b")
    assert fire(skewed, with_skewed_host(events, 20, NOW)) == baseline
    assert skewed.correlation.stats["late_dropped"] == 0
    assert skewed.correlation.stats["clock_clamped"] == 1
    assert skewed.correlation.tenants["acme"].watermark <= (
        NOW + timedelta(hours=2)).timestamp()
    flagged = skewed.correlation.skewed_senders()
    assert [(s.tenant, s.sender, s.basis) for s in flagged] == [
        ("acme", "db9", "receive time")]


def test_every_event_of_a_skewed_host_still_correlates(sigma: SimpleNamespace,
                                                       tmp_path: Path) -> None:
    """The host whose clock is off keeps its own detections: clamped to when it was received."""
    engine = engine_for(sigma, tmp_path)
    events = [failure(NOW + timedelta(hours=1), s, "db9", "192.0.2.7",
                      received=NOW + timedelta(seconds=s)) for s in range(5)]
    assert len(fire(engine, events)) == 1


def test_a_sender_is_late_only_against_its_own_clock(sigma: SimpleNamespace,
                                                     tmp_path: Path) -> None:
    engine = engine_for(sigma, tmp_path, lateness=timedelta(seconds=60))
    fire(engine, [failure(T0, 600, "web1", "10.9.9.9", received=None)])
    # web2's events are ten minutes behind web1's: not late, they are web2's own time
    assert len(fire(engine, [failure(T0, s, "web2", "10.9.9.9", received=None)
                             for s in range(5)])) == 1
    # behind web1's own watermark by more than the lateness: late, counted
    fire(engine, [failure(T0, 100, "web1", "10.9.9.8", received=None)])
    assert engine.correlation.stats["late_dropped"] == 1


def test_senders_and_flags_survive_save_and_restore(sigma: SimpleNamespace,
                                                    tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    engine = engine_for(sigma, tmp_path / "a")
    fire(engine, with_skewed_host(stream(T0, NOW)[:40], 20, NOW))
    engine.correlation.save(tmp_path / "state.json")
    restored = engine_for(sigma, tmp_path / "b")
    restored.correlation.restore(tmp_path / "state.json")
    assert [s.sender for s in restored.correlation.skewed_senders("acme")] == ["db9"]
    assert set(restored.correlation.tenants["acme"].clocks.senders) == {"web1", "web2", "db9"}


def test_senders_per_tenant_are_bounded(sigma: SimpleNamespace, tmp_path: Path) -> None:
    engine = engine_for(sigma, tmp_path, max_senders=3)
    fire(engine, [failure(T0, s, f"host{s}", "10.1.1.1", received=None) for s in range(10)])
    assert len(engine.correlation.tenants["acme"].clocks.senders) == 3
    assert engine.correlation.stats["evicted_senders"] == 7
