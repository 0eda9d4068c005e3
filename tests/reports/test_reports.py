"""Report content from a store of known alerts (counts, MTTA / MTTR, the share within SLA,
questions to the client, closed incidents), the closed-incident report's timeline, the HTML and
PDF renderings, and the schedule: a week's report and an incident's report queued once, across
restarts."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from alerts.kit import T0, TENANTS_YAML, UNUSED_MAIL_YAML, Clock, load, make_alert
from pypdf import PdfReader

from core.telemetry import Telemetry
from soc.alerts.model import SYSTEM, Actor, NotFound
from soc.alerts.service import Alerting
from soc.reports.incident import NotAnIncident
from soc.reports.render import render_html, render_pdf, unicode_font
from soc.reports.service import Reports
from soc.reports.weekly import Week, week_due

ANALYST = Actor("ana", frozenset({"acme"}))
CLIENT = Actor("acme-ciso", frozenset({"acme"}))
M = 60


def _alerting(tmp_path: Path, clock: Clock, *extra: str) -> Alerting:
    config = load(tmp_path / "conf.d", TENANTS_YAML.replace(
        "    notifications:\n      email:\n        critical: [secops@acme.example]",
        "    reports:\n      weekly: {enabled: true, weekday: monday, hour: 7}\n"
        "      closed_incident: {enabled: true, recipients: [soc-reports@acme.example]}\n"
        "    notifications:\n      email:\n        critical: [secops@acme.example]", 1),
        UNUSED_MAIL_YAML, *extra)
    return Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(), clock=clock)


def _work(alerting: Alerting, clock: Clock, name: str, severity: str, ack_min: int | None,
          resolve_min: int | None, resolution: str = "true_positive",
          created: dt.datetime = T0) -> str:
    clock.now = created
    alert = make_alert(severity=severity, rule_id=f"rule_{severity}",
                       group=f'{{"source.ip": "203.0.113.{len(name)}{ord(name[-1]) % 10}"}}')
    alert["alert.id"] = f"00000000-0000-4000-8000-{abs(hash(name)) % 10**12:012d}"
    alerting.store.upsert([alert], "acme")
    if ack_min is not None:
        clock.now = created + dt.timedelta(minutes=ack_min)
        alerting.store.acknowledge(alert["alert.id"], ANALYST)
    if resolve_min is not None:
        clock.now = created + dt.timedelta(minutes=resolve_min)
        alerting.store.resolve(alert["alert.id"], ANALYST, resolution)
        alerting.store.add_note(alert["alert.id"], ANALYST, f"closed {name}: {resolution}")
    return str(alert["alert.id"])


@pytest.fixture
def week_of_alerts(tmp_path: Path) -> tuple[Alerting, Clock, dict[str, str]]:
    """acme (critical 15m / 4h, high 60m / 24h, medium 4h / 3d) in the week of T0 (Monday
    2025-03-03), and one alert of the week before."""
    clock = Clock()
    alerting = _alerting(tmp_path, clock)
    ids = {
        "c1": _work(alerting, clock, "c1", "critical", 10, 120),  # within SLA
        "c2": _work(alerting, clock, "c2", "critical", 20, 180, "false_positive"),  # ack late
        "h1": _work(alerting, clock, "h1", "high", 30, 60),  # within SLA
        "h2": _work(alerting, clock, "h2", "high", 10, None),  # open past its 24h
        "m1": _work(alerting, clock, "m1", "medium", None, None),  # never touched
        "old": _work(alerting, clock, "old", "high", None, None,
                     created=T0 - dt.timedelta(days=2)),
    }
    clock.now = T0 + dt.timedelta(minutes=15)
    alerting.store.escalate(ids["h2"], ANALYST, "L2", "is this login expected?",
                            {"kind": "validation", "question": "Is user bob's login from "
                             "203.0.113.7 authorised?"})
    clock.now = T0 + dt.timedelta(hours=1)
    request_id = alerting.store.get(ids["h2"], ANALYST)["client_requests"][0]["id"]
    alerting.store.answer_client_request(ids["h2"], CLIENT, request_id, "No, block it.")
    return alerting, clock, ids


def pdf_text(pdf: bytes) -> str:
    """The PDF's text, runs of white space as one space (justified lines in the embedded
    Unicode font come out of the text extraction with widened gaps)."""
    return " ".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def test_weekly_report_figures_equal_hand_computed_ones(week_of_alerts: tuple[
        Alerting, Clock, dict[str, str]], tmp_path: Path) -> None:
    alerting, clock, ids = week_of_alerts
    now = dt.datetime(2025, 3, 10, 7, 0, tzinfo=dt.UTC)
    report = Reports(alerting).weekly("acme", Week.parse("2025-03-05"), now, coverage={})

    assert (report["week"], report["start"], report["end"]) == (
        "2025-03-03", "2025-03-03T00:00:00+00:00", "2025-03-10T00:00:00+00:00")
    rows = {r["severity"]: r for r in report["alerts_by_severity"]}
    assert {s: (r["new"], r["acknowledged"], r["escalated"], r["resolved"]) for s, r in
            rows.items() if r["total"]} == {"critical": (0, 0, 0, 2), "high": (0, 0, 1, 1),
                                            "medium": (1, 0, 0, 0)}
    assert report["alerts_total"]["total"] == 5  # the week before's alert is not counted
    overall = report["sla_overall"]
    assert overall["mtta_seconds"] == (10 + 20 + 30 + 10) * M / 4
    assert overall["mttr_seconds"] == (120 + 180 + 60) * M / 3
    # decided: all five (h2's resolve and m1's ack deadlines passed); within: c1 and h1.
    assert (overall["decided"], overall["within_sla"], overall["within_sla_pct"]) == (5, 2, 40.0)
    critical = next(r for r in report["sla"] if r["severity"] == "critical")
    assert (critical["within_sla_pct"], critical["meets_target"]) == (50.0, False)
    assert report["sla_targets"]["critical"] == {"ack_seconds": 15 * M,
                                                 "resolve_seconds": 240 * M}
    assert [q["answer"] for q in report["client_requests"]] == ["No, block it."]
    assert report["client_requests"][0]["kind"] == "validation"
    assert sorted(a["id"] for a in report["closed_incidents"]) == sorted([ids["c1"], ids["h1"]])
    assert {r["rule_id"]: r["alerts"] for r in report["top_rules"]} == {
        "rule_critical": 2, "rule_high": 2, "rule_medium": 1}
    assert report["attack_matrix"] == [{"tactic": "credential-access", "techniques": [
        {"technique": "T1110", "alerts": 5}]}]
    assert sum(a["alerts"] for a in report["top_attackers"]) == 5

    html = render_html(report)
    assert "ACME Corp" in html and "40.0 %" in html and "No, block it." in html
    pdf = render_pdf(report)
    (tmp_path / "weekly.pdf").write_bytes(pdf)  # for people: pdftoppm shows it
    (tmp_path / "weekly.html").write_text(html)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "ACME Corp" in text and "40.0 %" in text and "No, block it." in text


def test_incident_report_has_timeline_reason_and_audit(week_of_alerts: tuple[
        Alerting, Clock, dict[str, str]], tmp_path: Path) -> None:
    alerting, clock, ids = week_of_alerts
    reports = Reports(alerting)
    report = reports.incident(ids["c1"], CLIENT, T0 + dt.timedelta(days=1))
    assert report["rule"]["name"] == "Rule rule_critical"
    assert report["group_key"]["source.ip"].startswith("203.0.113.")
    assert report["resolution_reason"] == "closed c1: true_positive"
    steps = [s["what"] for s in report["timeline"]]
    assert steps[:2] == ["first match", "last match (1 in all)"]
    assert steps.index("acknowledged") < steps.index("resolved as true_positive")
    assert [a["action"] for a in report["audit"]] == ["created", "acknowledge", "resolve",
                                                      "note"]
    pdf = render_pdf(report)
    (tmp_path / "incident.pdf").write_bytes(pdf)
    text = pdf_text(pdf)
    assert "ACME Corp" in text and "closed c1: true_positive" in text

    with pytest.raises(NotAnIncident):  # a false positive has no incident report
        reports.incident(ids["c2"], ANALYST, T0)
    with pytest.raises(NotFound):  # another tenant's user: as if it did not exist
        reports.incident(ids["c1"], Actor("bravo-user", frozenset({"bravo"})), T0)


NON_LATIN = "Łódź Сбер Ελλάδα ☃ — 日本"  # Polish, Russian, Greek, a symbol, a dash, Japanese


def hostile_report(alerting: Alerting, ids: dict[str, str]) -> dict[str, Any]:
    report = Reports(alerting).incident(ids["c1"], ANALYST, T0)
    report["tenant_name"] = f"ACME {NON_LATIN}"
    report["rule"]["name"] = "<b>bold</b> & <script>x</script>"
    report["events"] = [{"@timestamp": T0.isoformat(), "message": "D" * 2000 + " <i>"}]
    return report


def test_hostile_and_non_latin_text_renders(week_of_alerts: tuple[
        Alerting, Clock, dict[str, str]]) -> None:
    """Markup in rule names, notes and events stays text; a client's name in Polish, Russian
    and Greek keeps its letters in the PDF (the embedded Unicode font); what the font lacks
    (CJK in DejaVu) becomes `?`; a 2,000-character token wraps instead of failing."""
    if unicode_font() is None:
        pytest.skip("no Unicode TrueType font (DejaVu Sans: apt-get install fonts-dejavu-core; "
                    ".ci/run installs it)")
    alerting, clock, ids = week_of_alerts
    report = hostile_report(alerting, ids)
    html = render_html(report)
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert f"ACME {NON_LATIN}" in html
    text = pdf_text(render_pdf(report))
    assert f"ACME {NON_LATIN[:-2]}??" in text  # DejaVu has no CJK
    assert "<script>x</script>" in text


def test_without_a_unicode_font_the_pdf_spells_what_latin1_lacks(
        week_of_alerts: tuple[Alerting, Clock, dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A system without DejaVu: fpdf2's built-in Latin-1 font, accents dropped where Latin-1
    lacks the letter, typographic signs in ASCII, anything else `?`; never a failure."""
    monkeypatch.setenv("VIGIL_PDF_FONT_DIR", str(tmp_path))  # no font there
    unicode_font.cache_clear()
    try:
        alerting, clock, ids = week_of_alerts
        text = pdf_text(render_pdf(hostile_report(alerting, ids)))
    finally:
        unicode_font.cache_clear()
    assert "ACME ?ódz ???? ?????? ? - ??" in text and "<script>x</script>" in text


def test_week_due_follows_the_schedule() -> None:
    monday_7 = dt.datetime(2025, 3, 10, 7, 0, tzinfo=dt.UTC)
    assert week_due(monday_7, "monday", 7).key == "2025-03-03"
    assert week_due(monday_7 - dt.timedelta(seconds=1), "monday", 7).key == "2025-02-24"
    assert week_due(dt.datetime(2025, 3, 13, 12, tzinfo=dt.UTC), "wednesday", 9).key == \
        "2025-03-03"
    assert Week.parse("2025-W10").key == "2025-03-03"


def test_each_report_is_queued_once_across_restarts(week_of_alerts: tuple[
        Alerting, Clock, dict[str, str]], tmp_path: Path) -> None:
    alerting, clock, ids = week_of_alerts
    now = dt.datetime(2025, 3, 10, 7, 30, tzinfo=dt.UTC)
    assert Reports(alerting).run(now) == 3  # the week, and the two true positives
    # A restart: a new service on the same store, and a pass an hour later.
    again = Alerting(alerting.config, tmp_path / "data", tmp_path / "conf.d", Telemetry(),
                     clock=clock)
    assert Reports(again).run(now + dt.timedelta(hours=1)) == 0
    mails = [n for n in again.store.notifications("acme") if n["event"].endswith("_report")]
    assert sorted(n["event"] for n in mails) == ["closed_incident_report",
                                                 "closed_incident_report", "weekly_report"]
    weekly = next(orjson.loads(n["payload"]) for n in mails if n["event"] == "weekly_report")
    assert weekly["to"] == ["ann@acme.example", "ciso@acme.example"]  # the tenant's contacts
    assert weekly["attachments"][0]["filename"] == "vigil-weekly-acme-2025-03-03.pdf"
    incident = next(orjson.loads(n["payload"]) for n in mails
                    if n["event"] == "closed_incident_report")
    assert incident["to"] == ["soc-reports@acme.example"]
    # Reopened and closed again as true positive: still one report.
    alerting.store.reopen(ids["c1"], ANALYST, "more hosts")
    alerting.store.resolve(ids["c1"], ANALYST, "true_positive")
    assert Reports(again).run(now + dt.timedelta(hours=2)) == 0
    listing = Reports(again).listing("acme", SYSTEM, now)
    assert listing["weekly"][0]["week"] == "2025-03-03"
    assert listing["weekly"][0]["mail"]["state"] == "pending"  # in the outbox, not yet sent
    assert {i["id"] for i in listing["incidents"]} == {ids["c1"], ids["h1"]}


def test_vigil_reports_writes_a_report_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from alerts.kit import write_conf

    from collector.cli import main
    from soc.alerts.db import Database
    from soc.alerts.store import AlertStore

    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    args = ["-c", str(conf), "--data-dir", str(data)]
    assert main(["reports", "weekly", "--tenant", "acme", *args]) == 66  # no store yet
    store = AlertStore(Database(data / "alerts.db"))
    alert = make_alert("acme", severity="critical")
    store.upsert([alert], "acme")
    store.resolve(alert["alert.id"], ANALYST, "true_positive")
    week = Week.of(dt.datetime.now(dt.UTC).date()).key
    out = tmp_path / "week.pdf"
    assert main(["reports", "weekly", "--tenant", "acme", "--week", week, "-o", str(out),
                 *args]) == 0
    text = "".join(p.extract_text() for p in PdfReader(out).pages)
    assert "ACME Corp" in text and "Rule ssh_brute_force" in text
    capsys.readouterr()
    assert main(["reports", "incident", alert["alert.id"][:8], "--format", "json", "-o", "-",
                 *args]) == 0
    assert orjson.loads(capsys.readouterr().out)["alert"]["id"] == alert["alert.id"]
    assert main(["reports", "weekly", "--tenant", "zulu", *args]) == 64
