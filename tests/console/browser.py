"""What the console's browser tests share: one headless Chromium window (Debian's chromium +
chromium-driver through Selenium) with screenshots kept per test under
tests/artefacts/console/<test>/ (ignored by git; VIGIL_ARTEFACTS moves it), the skip markers
for machines without a browser, and senders of real syslog lines to the test's daemon.

A test module uses it with `pytestmark = BROWSER` and the `browser` fixture of conftest.py.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from console.kit import PASSWORD, ConsoleDaemon
from support.daemon import REPO

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VIGIL_CHROMEDRIVER", "/usr/bin/chromedriver")
BRUTE_FORCE = "SSH brute force from one source"
ARTEFACTS = Path(os.environ.get("VIGIL_ARTEFACTS", REPO / "tests" / "artefacts")) / "console"

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select  # noqa: F401  (for the tests)
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None  # type: ignore[assignment]

BROWSER = [
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed (pip install "
                       "selenium; it is in the dev extra)"),
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason=f"no headless browser: {CHROMIUM} and {CHROMEDRIVER} are needed "
                       "(apt-get install chromium chromium-driver; .ci/run installs them)"),
]


def failed_ssh(address: str, n: int = 12) -> bytes:
    return "".join(f"<38>Mar  3 09:00:{i:02d} web-1 sshd[4242]: Failed password for root "
                   f"from {address} port {50000 + i} ssh2\n" for i in range(n)).encode()


def send_syslog(daemon: ConsoleDaemon, payload: bytes) -> None:
    with socket.create_connection(daemon.process.source_address("syslog_tcp"), timeout=5) as s:
        s.sendall(payload)


class Chromium:
    """One headless Chromium window on the console, with screenshots kept per test."""

    def __init__(self, daemon: ConsoleDaemon, artefacts: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1400,1000"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.daemon = daemon
        self.artefacts = artefacts
        self.shots = 0
        artefacts.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.daemon.base + path)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition: Any, timeout: float = 30.0, message: str = "") -> Any:
        """Polls `condition` until it is true; an element that is not there yet, or that went
        stale because the page was replaced meanwhile, counts as "not yet"."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(
            lambda _: condition(), message)

    def follow(self, target: Any, arrived: Any, message: str = "") -> None:
        """Clicks `target` (a CSS selector or an element) that loads another page, and waits
        until the old document is gone and `arrived()` holds on the new one, fully loaded.
        Waiting on the URL alone races: the old document can still answer for a moment, and its
        elements go stale in the test's hands (the CI failure of stop 21). The old document is
        marked with a window property that a new document cannot have; while the page changes
        hands the driver may answer with any error, which means "not yet"."""
        token = f"vigil-{self.shots}-{time.monotonic_ns()}"
        self.driver.execute_script("window.__vigilPage = arguments[0];", token)
        (self.find(target) if isinstance(target, str) else target).click()

        def landed() -> bool:
            return bool(self.driver.execute_script(
                "return window.__vigilPage !== arguments[0] && document.readyState === 'complete'",
                token)) and bool(arrived())

        WebDriverWait(self.driver, 30.0, poll_frequency=0.2,
                      ignored_exceptions=(WebDriverException,)).until(lambda _: landed(), message)

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = self.artefacts / f"{self.shots:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    def sign_in(self, login: str) -> None:
        self.open("/alerts")
        assert "/login" in self.driver.current_url  # no session: the sign-in page
        self.find("#login").send_keys(login)
        self.find("#password").send_keys(PASSWORD)
        self.find("#code").send_keys(self.daemon.code(login))
        self.shot(f"sign-in-{login}")
        self.follow("#sign-in", lambda: self.driver.current_url.endswith("/alerts"), "the queue")

    def submit(self, button: str) -> None:
        """Clicks a form's button and waits for the page the POST redirects to: the old page's
        root element goes stale (the URL alone cannot tell: it may already say done=)."""
        self.follow(button, lambda: "done=" in self.driver.current_url, f"after {button}")

    def close(self) -> None:
        self.driver.quit()
