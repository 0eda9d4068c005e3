"""End to end in a real headless Chromium (Debian's chromium + chromium-driver via Selenium):
sign in with TOTP, watch a brute-force alert made from real failed-SSH syslog lines appear in
the queue without a reload, investigate it (events from the lake, a pivot) and close it; and
escalate an alert to the client, who answers in the console, which the SOC then sees. Every
test saves screenshots under tests/artefacts/console/<test>/ (ignored by git; VIGIL_ARTEFACTS
moves it), each path printed in the test's output."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from console.browser import (
    BROWSER,
    BRUTE_FORCE,
    By,
    Chromium,
    Select,
    failed_ssh,
    send_syslog,
)
from console.kit import PASSWORD, ConsoleDaemon, start_daemon
from support.daemon import REPO, wait_for

from soc.alerts.model import Actor, AlertFilter

pytestmark = BROWSER


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("browser"), linux_auth=True)
    try:
        yield running
    finally:
        running.process.stop()


def test_sign_in_with_totp_and_triage_a_brute_force_alert_to_closed(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    analyst = daemon.user("soc_l1", ["acme"])
    browser.sign_in(analyst)
    assert "Security Detections" in browser.driver.title
    # The queue is open; the attack starts now and its alert appears without a reload.
    marker = browser.driver.execute_script("window.vigilMarker = 1; return window.vigilMarker")
    send_syslog(daemon, failed_ssh("203.0.113.7"))
    link = browser.wait(lambda: next((a for a in browser.driver.find_elements(
        By.CSS_SELECTOR, "a.alert-link") if a.text == BRUTE_FORCE), None), 40,
        "the brute-force alert in the queue")
    assert browser.driver.execute_script("return window.vigilMarker") == marker  # no reload
    browser.wait(lambda: browser.find("#total").text == "1")
    assert browser.find("[data-count='new']").text == "1"
    browser.shot("queue-with-new-alert")
    link.click()
    browser.wait(lambda: BRUTE_FORCE in browser.find("#alert-title").text)
    assert "source.address = 203.0.113.7" in browser.find("#group-key").text
    assert "T1110" in browser.find("#rule").text
    # The triggering events come from the tenant's lake (it may still be flushing).
    def events_shown() -> bool:
        browser.driver.refresh()
        return len(browser.driver.find_elements(By.CSS_SELECTOR, "#events table.events tr")) > 1
    browser.wait(events_shown, 30, "the matched events from the lake")
    assert "Failed password for root from 203.0.113.7" in browser.find("#events").text
    browser.shot("investigation")
    browser.find("a.pivot[href*='source.ip']").click()
    browser.wait(lambda: len(browser.driver.find_elements(By.CSS_SELECTOR,
                                                          "#pivot-rows tbody tr")) >= 10)
    browser.shot("pivot-source-ip")
    browser.submit("#acknowledge")
    assert browser.find("#status").text.startswith("acknowledged")
    Select(browser.find("#resolution")).select_by_value("true_positive")
    browser.find("#resolve-reason").send_keys("confirmed brute force; address blocked")
    browser.submit("#resolve")
    assert browser.find("#status").text == "resolved (true positive)"
    actions = [td.text for td in browser.driver.find_elements(By.CSS_SELECTOR,
                                                               "#audit .audit-action")]
    assert actions[-3:] == ["acknowledge", "resolve", "note"]
    browser.shot("closed")


def test_escalate_to_the_client_who_answers_in_the_console(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    send_syslog(daemon, failed_ssh("203.0.113.8"))
    alert_id = wait_for(lambda: next((a["id"] for a in daemon.store.search(
        Actor("test", None), AlertFilter(status=("new",)))[0]
        if "203.0.113.8" in a["group_key"]), None),
        40, message="the second brute-force alert")
    analyst = daemon.user("soc_l2", ["acme"])
    browser.sign_in(analyst)
    browser.open(f"/alerts/{alert_id}")
    Select(browser.find("#ask-kind")).select_by_value("validation")
    browser.find("#ask-question").send_keys("Is root's SSH login from 203.0.113.8 authorised?")
    browser.submit("#ask-client")
    assert "Waiting for the client's answer." in browser.find("#client-requests").text
    browser.shot("asked-the-client")
    browser.follow("#sign-out", lambda: "/login" in browser.driver.current_url,
                   "signed out")

    client = daemon.user("client_operator", ["acme"])
    browser.sign_in(client)
    browser.open(f"/alerts/{alert_id}")
    assert "authorised?" in browser.find("#client-requests").text
    assert not browser.driver.find_elements(By.CSS_SELECTOR, "#ask-client")
    browser.find(".answer-form textarea").send_keys("No: nobody should log in as root.")
    browser.shot("client-answering")
    browser.follow(".answer-form button", lambda: "done=answer" in browser.driver.current_url,
                   "the answer saved")
    assert "No: nobody should log in as root." in browser.find(".answer-text").text
    browser.shot("client-answered")
    browser.follow("#sign-out", lambda: "/login" in browser.driver.current_url,
                   "signed out")

    browser.sign_in(analyst)
    browser.open(f"/alerts/{alert_id}")
    assert f"Answer by {client}" in browser.find("#client-requests").text
    browser.shot("soc-sees-the-answer")
    trail, _ = daemon.store.audit(Actor("test", None), alert_id=alert_id)
    assert [(r["action"], r["actor"]) for r in trail][-2:] == [("escalate", analyst),
                                                              ("client_answer", client)]


def test_the_first_administrator_enrolls_without_mail_and_reaches_the_queue(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    """What `make run` tells a newcomer: `vigil users add --show-enrollment`, the activation
    link, then the console."""
    done = subprocess.run(
        [sys.executable, "-m", "collector.cli", "users", "add", "first-admin", "--email",
         "admin@example.com", "--role", "platform_admin", "--show-enrollment",
         "-c", str(daemon.process.conf_dir), "--data-dir", str(daemon.process.data_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    uri = re.search(r"otpauth URI: (otpauth://\S+)", done.stdout)
    link = re.search(r"https?://[^/\s]+(/api/v1/auth/activate\?\S+)", done.stdout)
    assert uri and link, done.stdout
    daemon.secrets["first-admin"] = parse_qs(urlparse(uri.group(1)).query)["secret"][0]
    browser.open(link.group(1))
    browser.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.driver.find_element(By.NAME, "code").send_keys(daemon.code("first-admin"))
    browser.shot("activation")
    browser.follow("button[type=submit]", lambda: "activated=1" in browser.driver.current_url,
                   "activated")
    assert "Your account is active" in browser.find("#login-info").text
    browser.sign_in("first-admin")
    assert "Security Detections" in browser.find("h1").text
    assert browser.driver.find_elements(By.ID, "tenant-switcher")  # sees every tenant
    browser.shot("first-admin-queue")
