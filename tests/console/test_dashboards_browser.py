"""The posture and dashboard pages in a real headless Chromium (see console.browser): the
firewall dashboard shows inactive with its reason, real FortiGate syslog lines reach the daemon
through the shipped pipeline, and after a reload the dashboard is active with its panels over
that data; the posture page shows the tenant's figures; a user saves a dashboard of SQL panels
through the form and a panel reading a file is refused with the sandbox's reason. Screenshots
under tests/artefacts/console/<test>/."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from console.browser import BROWSER, By, Chromium, Select, send_syslog
from console.kit import ConsoleDaemon, start_daemon

pytestmark = BROWSER

SOURCES = ("81.2.69.142", "89.160.20.112", "175.16.199.1", "216.160.83.56")  # GB SE CN US


def fortigate(count: int) -> bytes:
    """FortiGate traffic logs (FortiOS default key=value format) from now backwards."""
    now = int(time.time())
    return b"".join(
        (f'<189>date=2026-01-01 time=00:00:00 devname="fw1" devid="FG100" logid="0000000013" '
         f'type="traffic" subtype="forward" level="notice" vd="root" eventtime={now - 60 * i} '
         f"srcip={SOURCES[i % 4]} srcport={40000 + i} dstip=10.0.0.5 "
         f'dstport={(22, 443)[i % 2]} proto=6 action="{("deny", "accept")[i % 2]}" policyid=1 '
         f'service="SSH" sentbyte=10 rcvdbyte=20\n').encode() for i in range(count))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("dashboards"), shipped=("31-fortinet.yaml",))
    try:
        yield running
    finally:
        running.process.stop()


def reload_until(browser: Chromium, path: str, css: str, text: str, timeout: float = 60.0
                 ) -> None:
    """Reloads `path` until the element `css` says `text` (the page has no live update)."""
    def shown() -> bool:
        browser.open(path)
        found = browser.driver.find_elements(By.CSS_SELECTOR, css)
        return bool(found) and text in found[0].text
    browser.wait(shown, timeout, f"{css} saying {text!r} on {path}")


def tall_shot(browser: Chromium, name: str) -> None:
    """A screenshot of the whole page (the window made as tall as the page for it)."""
    height = browser.driver.execute_script("return document.documentElement.scrollHeight")
    browser.driver.set_window_size(1400, max(1000, min(int(height) + 40, 4000)))
    browser.shot(name)
    browser.driver.set_window_size(1400, 1000)


def test_firewall_dashboard_switches_on_when_fortigate_logs_arrive(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    browser.sign_in(daemon.user("client_operator", ["acme"]))
    browser.open("/dashboards")
    row = browser.find("#dashboard-firewall")
    assert row.get_attribute("data-active") == "0"
    assert "waiting for a firewall dataset" in row.find_element(By.CSS_SELECTOR, ".reason").text
    browser.shot("library-firewall-inactive")
    row.find_element(By.CSS_SELECTOR, "a.dashboard-link").click()
    browser.wait(lambda: browser.find("#dashboard-title").text == "Firewall and network traffic")
    assert browser.find("#dashboard-state").text.startswith("Inactive: waiting for a firewall")
    browser.shot("firewall-inactive")

    send_syslog(daemon, fortigate(40))
    reload_until(browser, "/dashboards/firewall?tenant=acme", "#dashboard-state", "Active")
    reload_until(browser, "/dashboards/firewall?tenant=acme", "#panel-connections .figure",
                 "40")
    ports = browser.find("#panel-top_destination_ports").text
    assert "22" in ports and "443" in ports
    countries = browser.find("#panel-sources_by_country").text
    assert "(map, as a table of countries)" in countries
    assert {"GB", "SE", "CN", "US"} <= set(countries.split())
    chart = browser.find("#panel-traffic_over_time svg.chart")
    assert chart.find_elements(By.CSS_SELECTOR, "circle")
    tall_shot(browser, "firewall-active")
    Select(browser.find("#since")).select_by_value("7d")
    browser.follow("#apply-range", lambda: "since=7d" in browser.driver.current_url,
                   "the 7-day range")
    assert browser.find("#panel-connections .figure").text == "40"
    browser.open("/dashboards")
    assert browser.find("#dashboard-firewall").get_attribute("data-active") == "1"
    browser.shot("library-firewall-active")


def test_posture_page_renders_the_tenants_figures(daemon: ConsoleDaemon,
                                                  browser: Chromium) -> None:
    daemon.add_alerts("acme", 4, severity="high")
    daemon.add_alerts("acme", 2, severity="critical")
    send_syslog(daemon, fortigate(8))
    browser.sign_in(daemon.user("soc_l1", ["acme", "demo"]))
    browser.open("/posture?tenant=acme")
    assert browser.find("#posture-title").text == "Security Posture · ACME Corp"
    assert int(browser.find("#open-total").text) >= 6
    assert int(browser.find("[data-open='critical']").text) >= 2
    assert browser.find("#trend svg.chart").find_elements(By.CSS_SELECTOR, "rect")
    assert "198.51.100.0" in browser.find("#top-attackers").text
    assert "T1110" in browser.find("#attack-matrix").text
    reload_until(browser, "/posture?tenant=acme", "#data-sources", "fortinet.firewall")
    assert "receiving" in browser.find("tr[data-dataset='fortinet.firewall']").text
    tall_shot(browser, "posture-acme")
    Select(browser.find("#tenant-switcher")).select_by_value("demo")
    browser.find("#tenant-switcher").submit()  # the header's switcher stays on /posture
    browser.wait(lambda: "Demo Inc" in browser.find("#posture-title").text)
    assert browser.find("#open-total").text == "0"
    browser.shot("posture-demo")


def test_save_a_dashboard_and_see_unsafe_sql_refused(daemon: ConsoleDaemon,
                                                     browser: Chromium) -> None:
    browser.sign_in(daemon.user("client_operator", ["acme"]))
    browser.open("/dashboards/new?tenant=acme")
    browser.find("#f-title").send_keys("Peeking")
    browser.find("[name='panel-0-sql']").send_keys(
        "SELECT * FROM read_parquet('/var/lib/vigil/lake/tenant=demo/**/*.parquet')")
    browser.find("#save-dashboard").click()
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#problems"))
    assert "read_parquet() is not allowed" in browser.find("#problems").text
    browser.shot("refused-sql")
    sql = browser.find("[name='panel-0-sql']")
    sql.clear()
    sql.send_keys('SELECT "destination.port" AS port, count(*) AS connections '
                  'FROM "fortinet.firewall" GROUP BY 1 ORDER BY 2 DESC')
    browser.find("[name='panel-0-title']").send_keys("Ports")
    Select(browser.find("[name='panel-0-kind']")).select_by_value("top_n")
    title = browser.find("#f-title")
    title.clear()
    title.send_keys("My ports")
    browser.find("#save-dashboard").click()
    browser.wait(lambda: browser.driver.find_elements(By.CSS_SELECTOR, "#done"))
    assert browser.find("#dashboard-title").text == "My ports"
    assert browser.find("#panel-p1 h2").text == "Ports"
    browser.shot("saved-dashboard")
