"""The mail outbox (`transport: outbox`), as the example configuration ships it: `vigil users
add` on a host without a mail server leaves the TOTP enrollment in <data_dir>/outbox/, `vigil
outbox list|show` reads it back, and the user activates and logs in against the real daemon."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pyotp
from alerts.kit import TENANTS_YAML, next_code, post, vigil, write_conf
from support.daemon import VigilProcess

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough passphrase 42"


def _conf(tmp_path: Path) -> tuple[Path, Path]:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    # The shipped notifier file as it is: the outbox transport, no SMTP server anywhere.
    write_conf(conf, (REPO / "conf.d" / "60-notify.yaml").read_text(), "60-notify.yaml")
    write_conf(conf, "vigil:\n  allow_empty: true\n  control:\n    address: 127.0.0.1:0\n",
               "00-vigil.yaml")
    return conf, data


def test_first_user_from_the_outbox_to_a_login(tmp_path: Path) -> None:
    conf, data = _conf(tmp_path)
    added = vigil(conf, data, "users", "add", "alice", "--email", "alice@acme.example",
                  "--name", "Alice Acme", "--role", "client_operator", "--tenant", "acme")
    assert added.returncode == 0, added.stderr
    assert "written to the outbox" in added.stdout
    link = re.search(r"(http://\S+/api/v1/auth/activate\?\S+)", added.stdout)
    assert link, added.stdout
    activation = urllib.parse.parse_qs(urllib.parse.urlparse(link.group(1)).query)["token"][0]

    files = list((data / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600  # it holds a TOTP secret
    listed = vigil(conf, data, "outbox", "list")
    assert listed.returncode == 0, listed.stderr
    message_id = files[0].name.removesuffix(".eml")
    assert message_id in listed.stdout and "alice@acme.example" in listed.stdout
    assert "two-factor enrollment for alice" in listed.stdout

    shown = vigil(conf, data, "outbox", "show", message_id[:20], "--save-attachments",
                  str(tmp_path / "qr"))
    assert shown.returncode == 0, shown.stderr
    uri = re.search(r"(otpauth://totp/\S+)", shown.stdout)
    assert uri, shown.stdout
    assert (tmp_path / "qr" / "vigil-totp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri.group(1)).query)["secret"][0]

    daemon = VigilProcess(conf, data).start()
    try:
        base = f"http://{daemon.control}"
        totp, used = pyotp.TOTP(secret), set[str]()
        status, body = post(base, "/auth/activate", {
            "login": "alice", "token": activation, "password": PASSWORD,
            "code": next_code(totp, used)})
        assert (status, body) == (200, {"login": "alice", "status": "active"})
        status, session = post(base, "/auth/login", {
            "login": "alice", "password": PASSWORD, "code": next_code(totp, used)})
        assert status == 200 and session["principal"]["tenants"] == ["acme"]
    finally:
        assert daemon.stop() == 0
    assert secret not in daemon.log()


def test_outbox_errors_are_one_line(tmp_path: Path) -> None:
    conf, data = _conf(tmp_path)
    empty = vigil(conf, data, "outbox", "list")
    assert empty.returncode == 0 and "is empty" in empty.stderr
    missing = vigil(conf, data, "outbox", "show", "20990101")
    assert missing.returncode == 66
    assert missing.stderr.strip().startswith("vigil outbox: no message '20990101'")
    assert len(missing.stderr.strip().splitlines()) == 1
    traversal = vigil(conf, data, "outbox", "show", "../secret")
    assert traversal.returncode == 66 and "is not a message id" in traversal.stderr


def test_smtp_transport_needs_a_host(tmp_path: Path) -> None:
    conf, data = _conf(tmp_path)
    write_conf(conf, "notifiers:\n  mail:\n    type: email\n    transport: smtp\n"
               "    sender: vigil@collector.example\n", "60-notify.yaml")
    result = vigil(conf, data, "validate")
    assert result.returncode == 78
    assert "`host` is required with transport smtp" in result.stderr


def test_notifications_go_to_the_outbox(tmp_path: Path) -> None:
    """The dispatcher's channel (alerts, escalations, breaches) writes there too."""
    import asyncio

    from collector.config import load_config
    from soc.notify.dispatcher import build_channels
    from soc.notify.outbox import list_messages

    conf, data = _conf(tmp_path)
    channels = build_channels(load_config(conf).section("notifiers"), conf, data)
    asyncio.run(channels["mail"].send({"to": ["soc@provider.example"], "subject": "[high] ssh",
                                       "text": "12 failed logins", "html": "<p>12</p>"}))
    [message] = list_messages(data / "outbox")
    assert message.subject == "[high] ssh" and message.text().strip() == "12 failed logins"
