"""End to end in a real headless Chromium: a client signs in, opens Reports, downloads last
week's report as PDF (Chromium's download directory set over CDP; the file must arrive and
be a PDF naming the tenant), views it as HTML, and opens the closed-incident report of a
brute-force alert made from real failed-SSH syslog lines, with its events from the lake.
Screenshots are saved under tests/artefacts/console/<test>/."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from console.browser import BROWSER, BRUTE_FORCE, Chromium, failed_ssh, send_syslog
from console.kit import ConsoleDaemon, start_daemon
from pypdf import PdfReader
from support.daemon import wait_for

from soc.alerts.model import Actor, AlertFilter

pytestmark = BROWSER
ROOT = Actor("root", None, "127.0.0.1")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("reports-browser"), linux_auth=True)
    try:
        yield running
    finally:
        running.process.stop()


def closed_brute_force(daemon: ConsoleDaemon) -> str:
    """A brute-force alert from real syslog lines, closed as true positive with a reason."""
    send_syslog(daemon, failed_ssh("203.0.113.77"))

    def found() -> str | None:
        items, _ = daemon.store.search(ROOT, AlertFilter(tenant="acme"))
        return next((a["id"] for a in items if a["rule"]["name"] == BRUTE_FORCE), None)

    alert_id = wait_for(found, 60, message="the brute-force alert")
    daemon.store.acknowledge(alert_id, ROOT)
    daemon.store.resolve(alert_id, ROOT, "true_positive")
    daemon.store.add_note(alert_id, ROOT, "Password spraying from 203.0.113.77; blocked.")
    return str(alert_id)


def test_download_the_weekly_report_as_pdf(daemon: ConsoleDaemon, browser: Chromium,
                                           tmp_path: Path) -> None:
    alert_id = closed_brute_force(daemon)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.driver.execute_cdp_cmd("Page.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
    browser.sign_in("acme-ciso")
    browser.follow("nav a[href='/reports']",
                   lambda: browser.driver.current_url.endswith("/reports"), "/reports")
    rows = browser.driver.find_elements("css selector", "#weekly-reports tbody tr")
    assert len(rows) == 12  # the past twelve weeks
    assert browser.find(f"#incident-reports tr[data-alert='{alert_id}']")
    browser.shot("reports")

    week = rows[0].get_attribute("data-week")
    rows[0].find_element("css selector", "a.download-pdf").click()
    name = f"vigil-weekly-acme-{week}.pdf"
    wait_for(lambda: (downloads / name).exists(), 30, message=f"{name} downloaded")
    data = (downloads / name).read_bytes()
    assert data.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "Weekly security report: ACME Corp" in text
    (browser.artefacts / name).write_bytes(data)  # kept beside the screenshots

    browser.follow(rows[0].find_element("css selector", "a.view-html"),
                   lambda: "Weekly security report" in browser.driver.page_source,
                   "the HTML report")
    assert "Alerts by severity and status" in browser.driver.page_source
    browser.shot("weekly-html")

    browser.open(f"/reports/incidents/{alert_id}.html")
    browser.wait(lambda: "Closed incident report" in browser.driver.page_source,
                 message="the incident report")
    page = browser.driver.page_source
    assert BRUTE_FORCE in page and "Password spraying from 203.0.113.77" in page
    assert "Failed password for root from 203.0.113.77" in page  # events from the lake
    browser.shot("incident-html")
