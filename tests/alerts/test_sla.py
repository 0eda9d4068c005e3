"""SLA math against an injected clock: MTTA, MTTR and within-SLA shares equal hand-computed
values; a breach is marked, counted and notified exactly once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from alerts.kit import T0, TENANTS_YAML, UNUSED_MAIL_YAML, Clock, load, make_alert, webhook_receiver

from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.alerts.sla import sla_report

ANALYST = Actor("ana", frozenset({"acme"}))
M = 60


def _alerting(tmp_path: Path, clock: Clock, *extra: str) -> Alerting:
    config = load(tmp_path / "conf.d", TENANTS_YAML, *extra)
    return Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(), clock=clock)


def _work(alerting: Alerting, clock: Clock, name: str, severity: str, ack_min: int | None,
          resolve_min: int | None) -> None:
    clock.now = T0
    alert = make_alert(severity=severity, group=f'{{"n": "{name}"}}')
    alerting.store.upsert([alert], "acme")
    if ack_min is not None:
        clock.now = T0 + dt.timedelta(minutes=ack_min)
        alerting.store.acknowledge(alert["alert.id"], ANALYST)
    if resolve_min is not None:
        clock.now = T0 + dt.timedelta(minutes=resolve_min)
        alerting.store.resolve(alert["alert.id"], ANALYST, "true_positive")


def test_report_equals_hand_computed_figures(tmp_path: Path) -> None:
    clock = Clock()
    alerting = _alerting(tmp_path, clock, UNUSED_MAIL_YAML)
    # acme: critical 15m / 4h, high 60m / 24h.
    _work(alerting, clock, "c1", "critical", 10, 120)    # in time
    _work(alerting, clock, "c2", "critical", 20, 180)    # acknowledged late
    _work(alerting, clock, "c3", "critical", 5, 300)     # resolved late
    _work(alerting, clock, "c4", "critical", None, None)  # never touched: both overdue at 6h
    _work(alerting, clock, "h1", "high", 30, 60)         # in time
    _work(alerting, clock, "h2", "high", 10, None)       # open, resolve not due until 24h
    now = T0 + dt.timedelta(hours=6)
    rows = {(r.tenant, r.severity): r for r in sla_report(alerting.store, now)}
    crit, high, total = rows[("acme", "critical")], rows[("acme", "high")], rows[("acme", "all")]

    assert (crit.alerts, crit.acknowledged, crit.resolved, crit.open) == (4, 3, 3, 1)
    assert crit.mtta_seconds == (10 + 20 + 5) * M / 3
    assert crit.mttr_seconds == (120 + 180 + 300) * M / 3
    assert (crit.ack_within_sla, crit.ack_breached) == (2, 2)
    assert (crit.resolve_within_sla, crit.resolve_breached) == (2, 2)
    assert (crit.decided, crit.within_sla, crit.within_sla_pct) == (4, 1, 25.0)
    assert (crit.target_pct, crit.meets_target) == (95.0, False)

    assert high.mtta_seconds == (30 + 10) * M / 2 and high.mttr_seconds == 60 * M
    assert (high.decided, high.within_sla, high.within_sla_pct, high.meets_target) == \
        (1, 1, 100.0, True)

    assert total.mtta_seconds == (10 + 20 + 5 + 30 + 10) * M / 5
    assert total.mttr_seconds == (120 + 180 + 300 + 60) * M / 4
    assert (total.decided, total.within_sla, total.within_sla_pct) == (5, 2, 40.0)
    assert total.target_pct is None and total.meets_target is None

    # `since` narrows by creation time.
    assert sla_report(alerting.store, now, since=T0 + dt.timedelta(seconds=1)) == []
    assert [r.tenant for r in sla_report(alerting.store, now, tenants=frozenset({"bravo"}))] \
        == []


def test_breach_is_marked_counted_and_notified_once(tmp_path: Path) -> None:
    clock = Clock()
    with webhook_receiver() as receiver:
        alerting = _alerting(tmp_path, clock, UNUSED_MAIL_YAML, f"""
        notifiers:
          soc_hook:
            type: webhook
            url: {receiver.url}
            secret: s3cret-key
            audience: soc
        """)
        alert = make_alert(severity="critical")
        alerting.store.upsert([alert], "acme")
        telemetry = alerting.telemetry

        def breaches() -> float:
            return telemetry.sample("vigil_alerts_sla_breaches_total", tenant="acme",
                                    severity="critical", kind="ack")

        clock.advance(minutes=14, seconds=59)
        assert alerting.monitor.check() == [] and breaches() == 0
        clock.advance(seconds=1)
        found = alerting.monitor.check()
        assert [(kind, a["id"]) for kind, a in found] == [("ack", alert["alert.id"])]
        clock.advance(minutes=1)
        assert alerting.monitor.check() == []
        assert breaches() == 1
        assert telemetry.sample("vigil_alerts_open", tenant="acme", severity="critical",
                                status="new") == 1

        import asyncio

        async def deliver() -> None:
            await alerting.dispatcher.pump()
            await alerting.dispatcher.drain(10)
            await alerting.dispatcher.pump()  # nothing left: the rows are marked sent
            await alerting.dispatcher.drain(10)

        asyncio.run(deliver())
        events = [orjson.loads(body)["event"] for _, body in receiver.requests]
        assert events == ["new_alert", "sla_breach"]
        breach = orjson.loads(receiver.requests[1][1])
        assert breach["breach"] == {"kind": "ack"} and breach["audience"] == "soc"
        audit, _ = alerting.store.audit(Actor("x", None), alert_id=alert["alert.id"])
        assert [r["action"] for r in audit] == ["created", "sla_ack_breach"]
        got = alerting.store.get(alert["alert.id"], ANALYST)
        assert got["sla"]["ack_breached_at"] == "2025-03-03T09:15:00.000000+00:00"


def test_resolve_breach_and_gauges_follow_state(tmp_path: Path) -> None:
    clock = Clock()
    alerting = _alerting(tmp_path, clock, UNUSED_MAIL_YAML)
    alert = make_alert(severity="critical")
    alerting.store.upsert([alert], "acme")
    clock.advance(minutes=5)
    alerting.store.acknowledge(alert["alert.id"], ANALYST)
    clock.advance(hours=4)
    kinds = [kind for kind, _ in alerting.monitor.check()]
    assert kinds == ["resolve"]
    t = alerting.telemetry
    assert t.sample("vigil_alerts_open", tenant="acme", severity="critical",
                    status="acknowledged") == 1
    alerting.store.resolve(alert["alert.id"], ANALYST, "benign")
    alerting.monitor.check()
    assert t.sample("vigil_alerts_open", tenant="acme", severity="critical",
                    status="acknowledged") == 0


@pytest.mark.parametrize("text", ["15m", "4h", "1d", "1h30m", "2w"])
def test_durations_parse(text: str) -> None:
    from core.config import parse_duration

    seconds = {"15m": 900, "4h": 14400, "1d": 86400, "1h30m": 5400, "2w": 1209600}[text]
    assert parse_duration(text).total_seconds() == seconds

