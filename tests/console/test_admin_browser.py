"""Administration end to end in a real headless Chromium: a platform admin adds a user for
acme in the console; the user enrolls the authenticator from the mail in the outbox, opens
the activation link, signs in with TOTP and sees only acme; months later the admin disables
the user from the access review, and the user's next page load is the sign-in page; back from
leave, the admin enables the user again, who signs in with the same credentials.
Screenshots under tests/artefacts/console/<test>/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlparse

import pyotp
import pytest
from console.browser import BROWSER, By, Chromium, Select
from console.kit import PASSWORD, ConsoleDaemon, start_daemon

from soc.notify.outbox import list_messages, outbox_root

pytestmark = BROWSER
KEY_RE = re.compile(r"add this key by hand:\s+([A-Z2-7]+)")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("admin-browser"), outbox=True)
    try:
        yield running
    finally:
        running.process.stop()


def test_admin_adds_a_user_who_enrolls_signs_in_and_is_disabled_by_the_access_review(
        daemon: ConsoleDaemon, browser: Chromium) -> None:
    acme_alert = daemon.add_alerts("acme", 1)[0]
    demo_alert = daemon.add_alerts("demo", 1)[0]
    browser.sign_in("root")
    browser.follow("#nav-admin", lambda: browser.driver.current_url.endswith("/admin/users"),
                   "the administration page")
    browser.find("#new-login").send_keys("acme-analyst")
    browser.find("#new-name").send_keys("Acme Analyst")
    browser.find("#new-email").send_keys("analyst@acme.example")
    Select(browser.find("#new-role")).select_by_value("client_operator")
    browser.find("#new-tenant-acme").click()
    browser.find("#new-reason").send_keys("onboarding ticket 7")
    browser.shot("add-user-form")
    browser.find("#add-user-submit").click()
    link = browser.wait(lambda: browser.find("#activation-link").get_attribute("value"))
    browser.shot("activation-link")

    # The enrollment went to the user (the outbox, no mail server); the admin saw no key.
    mail = [m for m in list_messages(outbox_root(daemon.process.data_dir))
            if m.to == "analyst@acme.example"]
    assert len(mail) == 1
    secret = KEY_RE.search(mail[0].text()).group(1)  # type: ignore[union-attr]
    assert secret not in browser.driver.page_source

    user = Chromium(daemon, browser.artefacts / "user")
    try:
        # No public_url configured: the link names the address the admin used.
        assert link.startswith(f"{daemon.base}/api/v1/auth/activate?login=acme-analyst&")
        user.driver.get(link)
        user.find("input[name=password]").send_keys(PASSWORD)
        totp = pyotp.TOTP(secret)
        step = totp.timecode(datetime.now(UTC))
        user.find("input[name=code]").send_keys(totp.generate_otp(step))
        user.shot("activation")
        user.follow("button[type=submit]", lambda: "activated=1" in user.driver.current_url,
                    "activated")
        daemon.secrets["acme-analyst"], daemon.last_step["acme-analyst"] = secret, step
        user.sign_in("acme-analyst")
        ids = {a.get_attribute("href").rsplit("/", 1)[-1] for a in
               user.driver.find_elements(By.CSS_SELECTOR, "a.alert-link")}
        assert acme_alert in ids and demo_alert not in ids
        assert not user.driver.find_elements(By.CSS_SELECTOR, "#nav-admin")
        user.shot("queue-acme-only")
        user.open(f"/alerts/{demo_alert}")
        assert "Sorry" in user.find("#error").text
        user.shot("demo-alert-refused")

        # Months pass without a sign-in: the access review lists the user.
        with daemon.store.db.transaction() as con:
            con.execute("UPDATE users SET last_login_at = '2026-01-02T00:00:00+00:00' "
                        "WHERE login = 'acme-analyst'")
        browser.open("/admin/access-review")
        assert browser.find("#inactive-days").get_attribute("value") == "90"
        row = browser.find("#review-inactive tr[data-login='acme-analyst']")
        assert "client_operator" in row.text and "acme" in row.text
        browser.shot("access-review")
        browser.follow("#disable-acme-analyst", lambda: "done=" in browser.driver.current_url,
                       "the disabled user")
        assert "disabled 1" in browser.find("#done").text
        browser.shot("access-review-done")

        user.open("/alerts")
        user.wait(lambda: "/login" in urlparse(user.driver.current_url).path,
                  message="the disabled user's next page is the sign-in page")
        user.shot("signed-out-after-disable")
    finally:
        user.close()
    reviews = [r for r in daemon.audit("access_review") if r["actor"] == "root"]
    assert reviews and "acme-analyst" in reviews[-1]["after"]["note"]
    browser.open("/admin/access-review")
    assert "access review" in browser.find("#disabled-acme-analyst").text
    browser.shot("access-review-disabled")
    browser.open("/admin/users/acme-analyst")
    assert browser.find("#user-status").text == "disabled"
    browser.shot("user-disabled")

    # Back from leave: enabled again from the same page, with the same credentials.
    browser.find("#enable-reason").send_keys("back from leave")
    browser.follow("#enable", lambda: "done=enable" in browser.driver.current_url,
                   "the enabled user")
    assert browser.find("#user-status").text == "active"
    assert "by root" in browser.find("#user-enabled").text
    assert browser.driver.find_elements(By.CSS_SELECTOR, "#disable")
    browser.shot("user-enabled")
    again = Chromium(daemon, browser.artefacts / "user-again")
    try:
        again.sign_in("acme-analyst")
        assert again.driver.find_elements(By.CSS_SELECTOR, "a.alert-link")
        again.shot("signed-in-after-enable")
    finally:
        again.close()
    browser.open("/admin/tenants")
    browser.shot("tenants")
    browser.open("/admin/tokens")
    browser.shot("tokens")
