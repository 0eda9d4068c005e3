"""The alert store sink: takes only ALERTS batches, commits before it releases offsets, keeps
what a failed commit held, and counts what it stores or rejects."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alerts.kit import Clock, make_alert

from core.events import ALERTS, EVENTS, Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from soc.alerts.db import Database
from soc.alerts.model import Actor, AlertFilter
from soc.alerts.sink import AlertStoreConfig, AlertStoreSink, alert_store_path
from soc.alerts.store import AlertStore


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sink(tmp_path: Path, **config: object) -> tuple[AlertStoreSink, Monotonic]:
    monotonic = Monotonic()
    context = SinkContext(tmp_path, "epoch", Telemetry(), DatasetSchemas(), monotonic=monotonic)
    sink = AlertStoreSink("store", AlertStoreConfig(**config), context)  # type: ignore[arg-type]
    return sink, monotonic


def _batch(tenant: str, first: int, last: int, *alerts: dict) -> Batch:
    return Batch(tenant, list(alerts), first, last, "alerts", kind=ALERTS)


async def test_offsets_are_released_only_after_the_commit(tmp_path: Path) -> None:
    sink, monotonic = _sink(tmp_path, max_seconds=5.0)
    await sink.start()
    assert AlertStoreSink.accepts == frozenset({ALERTS}) and EVENTS not in sink.accepts
    sink.write(_batch("acme", 10, 12, make_alert("acme")))
    sink.write(_batch("acme", 13, 13, make_alert("acme", rule_id="other")))
    assert sink.uncommitted_floor("acme") == 10
    await sink.flush()  # not due yet: nothing committed, nothing released
    assert sink.uncommitted_floor("acme") == 10
    store = AlertStore(Database(tmp_path / "alerts.db"), clock=Clock())
    assert store.search(Actor("x", None), AlertFilter())[1] == 0
    monotonic.now += 5
    await sink.flush()
    assert sink.uncommitted_floor("acme") is None
    assert store.search(Actor("x", None), AlertFilter())[1] == 2
    t = sink.telemetry
    assert t.sample("vigil_alerts_written_total", tenant="acme", result="inserted") == 2
    # The same batch replayed (a crash before the journal acknowledged it) adds nothing.
    sink.write(_batch("acme", 10, 12, make_alert("acme")))
    await sink.flush(force=True)
    assert store.search(Actor("x", None), AlertFilter())[1] == 2
    assert t.sample("vigil_alerts_written_total", tenant="acme", result="updated") == 1


async def test_a_failed_commit_keeps_the_alerts_and_the_floor(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path)
    await sink.start()
    db_path = tmp_path / "alerts.db"
    sink.write(_batch("acme", 5, 5, make_alert("acme")))
    # A database the process cannot open (its directory is a regular file): the commit fails.
    (tmp_path / "blocked").write_text("a file where a directory is expected")
    sink.store = AlertStore(Database(tmp_path / "blocked" / "alerts.db"))
    try:
        await sink.flush(force=True)
        raise AssertionError("the flush should have failed")
    except Exception as exc:
        assert not isinstance(exc, AssertionError)
    assert sink.uncommitted_floor("acme") == 5
    sink.write(_batch("acme", 6, 6, make_alert("acme", rule_id="later")))
    assert sink.uncommitted_floor("acme") == 5
    assert sink.telemetry.sample("vigil_component_errors_total", component_id="store",
                                 component_kind="sink", component_type="alert_store",
                                 error_type="write_failed", stage="flush") == 1
    # Repaired: everything held goes in, in order, and the floor clears.
    sink.store = AlertStore(Database(db_path))
    await sink.flush(force=True)
    assert sink.uncommitted_floor("acme") is None
    assert AlertStore(Database(db_path)).search(Actor("x", None), AlertFilter())[1] == 2


async def test_rejected_records_are_counted_not_stored(tmp_path: Path) -> None:
    sink, _ = _sink(tmp_path)
    await sink.start()
    sink.write(_batch("acme", 1, 2, {"vigil.tenant": "acme", "rule.id": "r"},
                      make_alert("bravo")))
    await sink.flush(force=True)
    assert sink.uncommitted_floor("acme") is None
    assert sink.telemetry.sample("vigil_alerts_rejected_total", tenant="acme") == 2


def test_store_path_default_and_configured(tmp_path: Path) -> None:
    assert alert_store_path(tmp_path) == tmp_path / "alerts.db"
    configured = AlertStoreConfig(path=tmp_path / "elsewhere.db")
    assert alert_store_path(tmp_path, [configured]) == tmp_path / "elsewhere.db"


async def test_an_alert_the_store_raises_on_is_dead_lettered_and_the_rest_stored(
        tmp_path: Path) -> None:
    """Poison (issue 13): a failure that is not the database's is retried one alert per
    transaction; the alert that fails alone goes to the dead letter, the others are stored."""
    rejected: list[tuple[str, int, str, str]] = []
    context = SinkContext(tmp_path, "epoch", Telemetry(), DatasetSchemas(),
                          reject=lambda p, events, c, exc, scope: rejected.append(
                              (p, len(events), c, type(exc).__name__)))
    sink = AlertStoreSink("store", AlertStoreConfig(), context)
    await sink.start()
    upsert = sink.store.upsert

    def poisoned(alerts: list[dict], fallback_tenant: str) -> object:
        if any(a.get("rule.id") == "poison" for a in alerts):
            raise ValueError("cannot store this one")
        return upsert(alerts, fallback_tenant=fallback_tenant)

    sink.store.upsert = poisoned  # type: ignore[method-assign]
    sink.write(_batch("acme", 5, 7, make_alert("acme"), make_alert("acme", rule_id="poison"),
                      make_alert("acme", rule_id="later")))
    await sink.flush(force=True)
    assert rejected == [("acme", 1, "store", "ValueError")]
    assert sink.uncommitted_floor("acme") is None
    assert AlertStore(Database(tmp_path / "alerts.db")).search(
        Actor("x", None), AlertFilter())[1] == 2


async def test_one_log_line_per_alert_raised(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """New alerts are logged once each with what triage starts from; updates are not."""
    sink, _ = _sink(tmp_path)
    await sink.start()
    with caplog.at_level(logging.INFO, "soc.alerts.sink"):
        sink.write(_batch("acme", 1, 1, make_alert("acme", count=12)))
        await sink.flush(force=True)
        sink.write(_batch("acme", 1, 1, make_alert("acme", count=12)))  # the same, replayed
        await sink.flush(force=True)
    raised = [r for r in caplog.records if r.getMessage() == "alert raised"]
    assert len(raised) == 1
    fields = raised[0].__dict__
    assert (fields["tenant"], fields["severity"], fields["rule"], fields["count"]) == (
        "acme", "high", "Rule ssh_brute_force", 12)
    assert fields["group"] == '{"source.ip": "203.0.113.7"}' and fields["alert_id"]
