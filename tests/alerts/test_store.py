"""The alert store on a real SQLite file: migrations, idempotent upserts, the lifecycle with its
audit trail, tenant scoping, and several processes writing at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alerts.kit import T0, TENANTS_YAML, UNUSED_MAIL_YAML, Clock, load, make_alert, new_store

from collector.config.tenants import SlaConfig
from soc.alerts.db import Database
from soc.alerts.migrations import MIGRATIONS
from soc.alerts.model import Actor, AlertFilter, Conflict, InvalidChange, NotFound
from soc.alerts.store import AlertStore

ANALYST = Actor("ana", frozenset({"acme"}), "192.0.2.10")


def test_migrations_apply_once_in_order_and_use_wal(tmp_path: Path) -> None:
    db = Database(tmp_path / "alerts.db")
    assert db.migrate() == [v for v, _, _ in MIGRATIONS]
    assert Database(tmp_path / "alerts.db").migrate() == []
    assert db.schema_version() == MIGRATIONS[-1][0]
    con = sqlite3.connect(tmp_path / "alerts.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]
    assert (tmp_path / "alerts.db").stat().st_mode & 0o077 == 0


def test_replayed_alert_updates_instead_of_duplicating(tmp_path: Path) -> None:
    clock = Clock()
    store = new_store(tmp_path / "a.db", clock)
    first = make_alert(count=3)
    assert store.upsert([first], "acme").inserted == [first["alert.id"]]
    clock.advance(minutes=1)
    replay = store.upsert([first], "acme")
    assert replay.inserted == [] and replay.updated == [first["alert.id"]]
    later = make_alert(count=7, last_seen=T0.replace(minute=5))
    assert later["alert.id"] == first["alert.id"]
    store.upsert([later], "acme")
    items, total = store.search(ANALYST, AlertFilter())
    assert total == 1
    assert items[0]["count"] == 7 and items[0]["last_seen"].startswith("2025-03-03T09:05")
    # An older copy replayed after a newer one never rolls the alert back.
    assert store.upsert([first], "acme").unchanged == [first["alert.id"]]
    assert store.get(first["alert.id"], ANALYST)["count"] == 7


def test_detection_never_touches_triage_state(tmp_path: Path) -> None:
    store = new_store(tmp_path / "a.db", Clock())
    alert = make_alert()
    store.upsert([alert], "acme")
    store.acknowledge(alert["alert.id"], ANALYST)
    store.upsert([make_alert(count=9, last_seen=T0.replace(hour=10))], "acme")
    got = store.get(alert["alert.id"], ANALYST)
    assert (got["status"], got["assignee"], got["count"]) == ("acknowledged", "ana", 9)


def test_sla_due_times_come_from_the_tenant_at_creation(tmp_path: Path) -> None:
    config = load(tmp_path / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML)
    clock = Clock()
    store = AlertStore(Database(tmp_path / "a.db"), clock=clock,
                       sla_policy=lambda t, s: config.tenants[t].sla.for_severity(s))
    clock.advance(minutes=3)
    store.upsert([make_alert(severity="critical"), make_alert("bravo", severity="high")])
    crit = store.search(Actor("x", None), AlertFilter(tenant="acme"))[0][0]
    assert crit["created_at"] == "2025-03-03T09:03:00.000000+00:00"
    assert crit["sla"]["ack_due"] == "2025-03-03T09:18:00.000000+00:00"
    assert crit["sla"]["resolve_due"] == "2025-03-03T13:03:00.000000+00:00"
    bravo = store.search(Actor("x", None), AlertFilter(tenant="bravo"))[0][0]
    assert bravo["sla"]["ack_due"] == "2025-03-03T09:33:00.000000+00:00"
    assert bravo["sla"]["resolve_due"] == "2025-03-03T17:03:00.000000+00:00"
    assert SlaConfig().for_severity("no-such-level") == SlaConfig().medium


def test_bad_alert_records_are_rejected_with_a_reason(tmp_path: Path) -> None:
    store = new_store(tmp_path / "a.db", Clock())
    good = make_alert()
    result = store.upsert([{"vigil.tenant": "acme"}, make_alert("bravo"), good,
                           {**make_alert(rule_id="x"), "alert.first_seen": "not a time",
                            "alert.last_seen": None, "@timestamp": None}], "acme")
    assert result.inserted == [good["alert.id"]]
    problems = [p for _, p in result.rejected]
    assert problems[0] == "missing or invalid alert.id"
    assert "tenant 'bravo' in a batch of tenant 'acme'" in problems[1]
    assert problems[2] == "missing alert.first_seen / alert.last_seen"


def test_lifecycle_and_audit_trail(tmp_path: Path) -> None:
    clock = Clock()
    store = new_store(tmp_path / "a.db", clock)
    alert_id = make_alert()["alert.id"]
    store.upsert([make_alert()], "acme")
    clock.advance(minutes=10)
    store.acknowledge(alert_id, ANALYST)
    with pytest.raises(Conflict):
        store.acknowledge(alert_id, ANALYST)
    clock.advance(minutes=5)
    change = store.escalate(alert_id, ANALYST, "L2", "lateral movement suspected")
    assert change.after["status"] == "escalated" and change.before["status"] == "acknowledged"
    with pytest.raises(InvalidChange, match="no active user 'bob' in tenant 'acme'"):
        store.assign(alert_id, ANALYST, "bob")
    with store.db.transaction() as con:  # bob: an active analyst of acme
        con.execute("INSERT INTO users (login, display_name, email, role, status, totp_secret, "
                    "created_at, created_by, failed_logins) VALUES ('bob', 'Bob', "
                    "'b@example.com', 'soc_l1', 'active', 'x', '', 'test', 0)")
        con.execute("INSERT INTO user_tenants (login, tenant) VALUES ('bob', 'acme')")
    store.assign(alert_id, ANALYST, "bob")
    store.add_note(alert_id, ANALYST, "confirmed with the client")
    clock.advance(minutes=30)
    store.resolve(alert_id, ANALYST, "true_positive")
    with pytest.raises(Conflict):
        store.resolve(alert_id, ANALYST, "benign")
    with pytest.raises(Conflict):
        store.resolve(alert_id, ANALYST, "nonsense")
    store.reopen(alert_id, ANALYST, "same attacker again")
    got = store.get(alert_id, ANALYST)
    assert got["status"] == "escalated" and got["resolution"] is None
    assert [n["body"] for n in got["notes"]] == ["confirmed with the client",
                                                 "reopened: same attacker again"]
    records, total = store.audit(ANALYST, alert_id=alert_id)
    assert [r["action"] for r in records] == ["created", "acknowledge", "escalate", "assign",
                                              "note", "resolve", "reopen"]
    ack = records[1]
    assert (ack["actor"], ack["address"], ack["at"]) == ("ana", "192.0.2.10",
                                                         "2025-03-03T09:10:00.000000+00:00")
    assert ack["before"]["status"] == "new" and ack["after"]["status"] == "acknowledged"
    resolve = records[5]
    assert resolve["after"]["resolution"] == "true_positive"
    assert resolve["after"]["resolved_at"] == "2025-03-03T09:45:00.000000+00:00"
    # Audit rows are append-only history: a later change adds, never rewrites.
    assert total == 7


def test_resolving_a_new_alert_acknowledges_it_too(tmp_path: Path) -> None:
    clock = Clock()
    store = new_store(tmp_path / "a.db", clock)
    store.upsert([make_alert()], "acme")
    clock.advance(minutes=2)
    change = store.resolve(make_alert()["alert.id"], ANALYST, "false_positive")
    assert change.after["acknowledged_at"] == change.after["resolved_at"]


def test_scope_hides_other_tenants_like_missing_alerts(tmp_path: Path) -> None:
    store = new_store(tmp_path / "a.db", Clock())
    theirs = make_alert("bravo")
    store.upsert([theirs], "bravo")
    store.upsert([make_alert("acme")], "acme")
    for attempt in (lambda: store.get(theirs["alert.id"], ANALYST),
                    lambda: store.acknowledge(theirs["alert.id"], ANALYST),
                    lambda: store.add_note(theirs["alert.id"], ANALYST, "x"),
                    lambda: store.get("no-such-id", ANALYST)):
        with pytest.raises(NotFound, match="not found"):
            attempt()
    assert store.search(ANALYST, AlertFilter(tenant="bravo")) == ([], 0)
    assert [a["tenant"] for a in store.search(ANALYST, AlertFilter())[0]] == ["acme"]
    assert store.audit(ANALYST, tenant="bravo") == ([], 0)
    nobody = Actor("nobody", frozenset())
    assert store.search(nobody, AlertFilter()) == ([], 0)


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    """Two OS processes upsert and triage the same file concurrently (WAL + busy timeout)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(Path.cwd())!r}, {str(Path.cwd() / 'tests')!r}]
        from alerts.kit import make_alert, Clock, new_store
        from soc.alerts.model import Actor
        from pathlib import Path
        import datetime as dt
        worker = int(sys.argv[1])
        store = new_store(Path({str(tmp_path / 'shared.db')!r}), Clock())
        actor = Actor(f"w{{worker}}", None)
        for i in range(60):
            alert = make_alert(group=f'{{{{"n": "{{worker}}-{{i}}"}}}}')
            store.upsert([alert], "acme")
            store.acknowledge(alert["alert.id"], actor)
            store.add_note(alert["alert.id"], actor, "seen")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], stderr=subprocess.PIPE)
             for n in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    store = new_store(tmp_path / "shared.db", Clock())
    items, total = store.search(Actor("x", None), AlertFilter(status=["acknowledged"]),
                                limit=500)
    assert total == 120
    assert store.audit(Actor("x", None), limit=1)[1] == 120 * 3
