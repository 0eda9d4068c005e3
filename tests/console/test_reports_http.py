"""Reports over HTTP against a real daemon: the weekly report mailed (HTML body, PDF attached)
to a real SMTP server once per week even across a restart, the closed-incident report mailed
when an alert is closed as true positive, and tenant isolation of the report pages and
/api/v1/reports (another tenant's report is a 404, audited)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
import yaml
from alerts.kit import SmtpServer, email_notifier_yaml, smtp_server
from console.kit import USERS, Browser, ConsoleDaemon, activate, conf_yaml
from pypdf import PdfReader
from support.daemon import VigilProcess, wait_for

from collector.config.tenants import WEEKDAYS
from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.alerts.store import AlertStore
from soc.auth.config import AccessPolicy
from soc.auth.directory import UserDirectory
from soc.reports.weekly import week_due

ROOT = Actor("root", None, "127.0.0.1")
EVERYONE = Actor("test", None)


def reports_conf() -> dict[str, object]:
    """The console kit's tenants; acme's weekly report due now (today, 00:00 UTC) and its
    closed-incident reports on."""
    conf = conf_yaml()
    acme = conf["tenants"]["acme"]  # type: ignore[index]
    acme["contact"] = {"name": "Ann Acme", "email": "ann@acme.example"}
    acme["reports"] = {
        "weekly": {"enabled": True, "weekday": WEEKDAYS[datetime.now(UTC).weekday()],
                   "hour": 0},
        "closed_incident": {"enabled": True, "recipients": ["incidents@acme.example"]}}
    return conf


def start(tmp: Path, smtp: SmtpServer) -> ConsoleDaemon:
    conf, data = tmp / "conf.d", tmp / "data"
    conf.mkdir(parents=True)
    (conf / "10-test.yaml").write_text(yaml.safe_dump(reports_conf()))
    (conf / "20-mail.yaml").write_text(email_notifier_yaml(smtp))
    data.mkdir()
    db = Database(data / "alerts.db")
    db.migrate()
    directory = UserDirectory(db, AccessPolicy(), known_tenants=lambda: {"acme", "demo"})
    daemon = ConsoleDaemon(VigilProcess(conf, data), AlertStore(db), directory)
    for login, (role, tenants) in USERS.items():
        daemon.secrets[login] = activate(directory, login, role, tenants, daemon.last_step)
    daemon.process.start()
    return daemon


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
           ) -> Iterator[ConsoleDaemon]:
    running = start(tmp_path_factory.mktemp("reports"), smtp)
    try:
        yield running
    finally:
        running.process.stop()


def reports(smtp: SmtpServer, kind: str) -> list[EmailMessage]:
    return [m for m in smtp.messages if kind in str(m["Subject"])]


def pdf_of(message: EmailMessage) -> bytes:
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_content_type() == "application/pdf"
    data = attachments[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def last_week() -> str:
    return week_due(datetime.now(UTC), WEEKDAYS[datetime.now(UTC).weekday()], 0).key


def test_the_weekly_report_is_mailed_with_its_pdf(daemon: ConsoleDaemon,
                                                  smtp: SmtpServer) -> None:
    wait_for(lambda: reports(smtp, "Weekly security report"), 30, message="the weekly mail")
    mail = reports(smtp, "Weekly security report")[0]
    assert "ACME Corp" in str(mail["Subject"])
    assert mail["To"] == "ann@acme.example"  # the tenant's contact (no recipients given)
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "Alerts by severity and status" in html.get_content()
    data = pdf_of(mail)
    assert data.startswith(b"%PDF")
    assert "Weekly security report: ACME Corp" in pdf_text(data)
    # The console's list shows it mailed.
    browser = Browser(daemon)
    browser.sign_in("acme-ciso")
    page = browser.get("/reports")
    assert page.status_code == 200 and f'data-week="{last_week()}"' in page.text
    assert "sent to ann@acme.example" in page.text


def test_another_tenants_reports_are_not_found(daemon: ConsoleDaemon) -> None:
    demo_alert = daemon.add_alerts("demo", 1)[0]
    daemon.store.resolve(demo_alert, ROOT, "true_positive")
    acme_alert = daemon.add_alerts("acme", 1)[0]
    daemon.store.resolve(acme_alert, ROOT, "true_positive")
    week = last_week()
    browser = Browser(daemon)
    browser.sign_in("acme-ciso")
    own = browser.get(f"/reports/weekly/acme/{week}.pdf")
    assert own.status_code == 200 and own.headers["Content-Type"] == "application/pdf"
    assert own.content.startswith(b"%PDF")
    assert browser.get(f"/reports/incidents/{acme_alert}.pdf").status_code == 200
    view = browser.get(f"/reports/weekly/acme/{week}.html")
    assert "ACME Corp" in view.text and "script" not in view.headers["Content-Security-Policy"]
    denied_before = len(daemon.audit("dashboard_denied")) + len(daemon.audit("alert_not_found"))
    for path in (f"/reports/weekly/demo/{week}.pdf", f"/reports/weekly/demo/{week}.html",
                 f"/reports/incidents/{demo_alert}.pdf", "/reports?tenant=demo"):
        response = browser.get(path)
        assert response.status_code == 404, path
        assert "Demo Inc" not in response.text
    token = browser.http.cookies["vigil_session"]
    headers = {"Authorization": f"Bearer {token}"}
    api = daemon.base + "/api/v1/reports"
    for url in (f"{api}/weekly/demo/{week}?format=pdf", f"{api}/incidents/{demo_alert}",
                f"{api}?tenant=demo"):
        assert requests.get(url, headers=headers, timeout=10).status_code == 404, url
    assert requests.get(f"{api}/weekly/acme/{week}?format=json", headers=headers,
                        timeout=10).json()["tenant_name"] == "ACME Corp"
    denied = len(daemon.audit("dashboard_denied")) + len(daemon.audit("alert_not_found"))
    assert denied - denied_before == 7  # every refusal audited


def test_reports_are_mailed_once_across_a_restart(daemon: ConsoleDaemon,
                                                  smtp: SmtpServer) -> None:
    wait_for(lambda: reports(smtp, "Weekly security report"), 30, message="the weekly mail")
    daemon.process.stop()
    daemon.process.start()
    # Closed as true positive through the console: its report is mailed by the restarted
    # daemon's report pass, the pass that would have mailed the week again.
    alert_id = daemon.add_alerts("acme", 1, rule_id="ssh_brute_force_restart")[0]
    browser = Browser(daemon)
    browser.sign_in("ana")
    done = browser.post(f"/alerts/{alert_id}/resolve",
                        {"resolution": "true_positive", "reason": "attacker blocked at the "
                         "firewall"})
    assert done.status_code == 303
    wait_for(lambda: any(pdf_text(pdf_of(m)).count("attacker blocked") for m in
                         reports(smtp, "Closed incident report")), 30,
             message="the incident mail")
    mail = next(m for m in reports(smtp, "Closed incident report")
                if "attacker blocked" in pdf_text(pdf_of(m)))
    assert mail["To"] == "incidents@acme.example"
    assert len(reports(smtp, "Weekly security report")) == 1
    weekly_rows = [r for r in daemon.store.notifications("acme") if r["event"] == "weekly_report"]
    assert len(weekly_rows) == 1 and weekly_rows[0]["state"] == "sent"
