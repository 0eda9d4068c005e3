"""The integration map end to end in a real headless Chromium: real syslog lines of two
categories (sshd authentication failures and FortiGate traffic) reach acme's data; the map
shows those categories present with their datasets and the others missing with the rules and
dashboards they would switch on; a plan entry is added through the form and exported; the
tenant switcher moves the map to demo. Screenshots under tests/artefacts/console/<test>/."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from console.browser import (
    BROWSER,
    By,
    Chromium,
    Select,
    failed_ssh,
    send_syslog,
)
from console.kit import ConsoleDaemon, start_daemon

pytestmark = BROWSER


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("integrations"), linux_auth=True,
                           shipped=("31-fortinet.yaml",))
    try:
        yield running
    finally:
        running.process.stop()


def fortigate_traffic(n: int) -> bytes:
    now_ns = time.time_ns()
    return "".join(
        f'<189>date=2026-12-06 time=10:00:00 devname="FGT-HQ" devid="FG100F" '
        f'logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" '
        f'eventtime={now_ns + i} srcip=203.0.113.{i % 50} srcport={40000 + i} '
        f'srcintf="wan1" dstip=10.0.0.5 dstport=443 dstintf="internal" proto=6 '
        f'action="deny" policyid=0 service="HTTPS"\n' for i in range(n)).encode()


def state(browser: Chromium, category: str) -> str:
    return str(browser.find(f"#category-{category}").get_attribute("data-state"))


def test_the_map_shows_what_the_data_brings_and_the_plan_is_edited_and_exported(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    analyst = daemon.user("soc_l1", ["acme", "demo"])
    browser.sign_in(analyst)
    send_syslog(daemon, failed_ssh("198.51.100.200") + fortigate_traffic(40))
    browser.follow("#nav-integrations", lambda: "Integration map" in browser.driver.title,
                   "the map")
    assert "ACME Corp" in browser.find("#map-title").text  # the user's first tenant

    def arrived() -> bool:  # detection saves coverage every few seconds; the lake flushes
        browser.driver.refresh()
        return (state(browser, "perimeter_security") == "present"
                and state(browser, "authentication") == "present"
                and "fortinet.firewall" in browser.find("#category-perimeter_security").text
                and browser.find("#category-perimeter_security td.since").text != "–")
    browser.wait(arrived, 60, "perimeter security and authentication present")
    perimeter = browser.find("#category-perimeter_security").text
    assert "fortinet.firewall" in perimeter and "Dashboards on: Firewall" in perimeter
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert browser.find("#category-perimeter_security td.since").text == today
    assert "Firewall" not in browser.find("#category-endpoints").text  # not an iptables one
    assert "linux.auth" in browser.find("#category-authentication").text
    # Missing categories say what connecting them would switch on, by name.
    cloud = browser.find("#category-cloud")
    assert state(browser, "cloud") == "missing"
    assert "Connecting it would switch on" in cloud.text
    assert cloud.find_element(By.CSS_SELECTOR, ".n-dashboards").text.startswith("1 dashboard")
    cloud.find_element(By.CSS_SELECTOR, ".switches-on summary").click()
    names = [li.text for li in cloud.find_elements(By.CSS_SELECTOR, "li.dashboard-name")]
    assert len(names) == 1 and names[0].startswith("dashboard: ")
    assert browser.find("#map-summary").text.startswith("3 of 7 categories present")
    browser.shot("integration-map")
    browser.driver.execute_script("arguments[0].scrollIntoView()", cloud)
    browser.shot("missing-cloud-would-switch-on")

    # A planned source, through the form the missing category's link opens.
    browser.follow(cloud.find_element(By.CSS_SELECTOR, "a.plan-it"),
                   lambda: browser.find("#plan-category"), "the plan form")
    assert Select(browser.find("#plan-category")).first_selected_option.get_attribute(
        "value") == "cloud"
    browser.find("#plan-product").send_keys("AWS CloudTrail (production account)")
    browser.driver.execute_script(
        "document.getElementById('plan-date').value = '2027-01-15'")
    browser.find("#plan-owner").send_keys("ACME cloud team")
    browser.find("#plan-notes").send_keys("S3 + SQS notifications; role to assume pending")
    browser.shot("plan-form-filled")
    browser.submit("#plan-save")
    assert browser.find("#done").text == "Source added to the plan."
    row = browser.find("#plan-table tr.plan-entry")
    assert "AWS CloudTrail (production account)" in row.text and "2027-01-15" in row.text
    assert "cloud services" in row.text
    browser.driver.execute_script("document.getElementById('plan').scrollIntoView()")
    browser.shot("plan-with-entry")

    # The export links download the plan (read here through the page's own origin).
    href = browser.find("#export-csv").get_attribute("href")
    exported = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text().then(t => done([r.status, "
        "r.headers.get('content-disposition'), t])));", href)
    status, disposition, text = exported
    assert status == 200 and "integration-plan-acme-" in disposition
    assert "AWS CloudTrail (production account)" in text and "ACME cloud team" in text

    # The tenant switcher keeps the user on the map.
    Select(browser.find("#tenant-switcher")).select_by_value("demo")
    browser.follow(".switcher button", lambda: "tenant=demo" in browser.driver.current_url,
                   "the switched page")
    assert browser.driver.current_url.endswith("/integrations?tenant=demo")
    assert "Demo Inc" in browser.find("#map-title").text
    assert state(browser, "perimeter_security") == "missing"
    assert "Nothing planned yet." in browser.find("#plan-table").text
    browser.shot("demo-map")
