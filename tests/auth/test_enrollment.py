"""Enrollment end to end: `vigil users add` prints the activation link, the platform mails the
TOTP enrollment (otpauth URI + QR PNG) to a real SMTP server (aiosmtpd, STARTTLS + AUTH), the
user activates and logs in against a real daemon; no secret (TOTP secret, password, session
token, activation token outside the one `add` line) appears in CLI output or daemon logs."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pyotp
import pytest
from alerts.kit import (
    TENANTS_YAML,
    body_text,
    email_notifier_yaml,
    next_code,
    post,
    smtp_server,
    vigil,
    write_conf,
)
from support.daemon import VigilProcess

from soc.auth.totp import qr_png

PASSWORD = "a long enough passphrase 42"


def _otpauth_secret(mail_text: str) -> str:
    uri = re.search(r"(otpauth://totp/\S+)", mail_text)
    assert uri, mail_text
    return urllib.parse.parse_qs(urllib.parse.urlparse(uri.group(1)).query)["secret"][0]


def test_enrollment_activation_login_and_no_secret_leaks(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    with smtp_server(tmp_path / "tls") as smtp:
        write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
        write_conf(conf, email_notifier_yaml(smtp), "60-notify.yaml")
        # A console-only host: no sources, on purpose.
        write_conf(conf, "vigil:\n  allow_empty: true\n  control:\n    address: 127.0.0.1:0\n",
                   "00-vigil.yaml")
        added = vigil(conf, data, "users", "add", "alice", "--email", "alice@acme.example",
                      "--name", "Alice Acme", "--role", "client_operator", "--tenant", "acme")
        assert added.returncode == 0, added.stderr
        link = re.search(r"(http://\S+/api/v1/auth/activate\?\S+)", added.stdout)
        assert link, added.stdout
        query = urllib.parse.parse_qs(urllib.parse.urlparse(link.group(1)).query)
        activation_token = query["token"][0]
        assert query["login"] == ["alice"]

        mail = smtp.wait(1)[0]
        assert smtp.envelopes[0][1] == ["alice@acme.example"]
        text = body_text(mail)
        uri = re.search(r"(otpauth://totp/\S+)", text)
        assert uri, text
        secret = _otpauth_secret(text)
        attachment = next(mail.iter_attachments())
        assert attachment.get_filename() == "vigil-totp.png"
        png = attachment.get_content()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == qr_png(uri.group(1))
        assert secret not in added.stdout + added.stderr
        assert activation_token not in mail.as_string()  # the link never goes by this mail

        daemon = VigilProcess(conf, data).start()
        try:
            base = f"http://{daemon.control}"
            totp, used = pyotp.TOTP(secret), set()
            status, _ = post(base, "/auth/activate", {"login": "alice", "token": "act_forged",
                                                      "password": PASSWORD, "code": totp.now()})
            assert status == 400
            status, body = post(base, "/auth/activate", {
                "login": "alice", "token": activation_token, "password": PASSWORD,
                "code": next_code(totp, used)})
            assert (status, body) == (200, {"login": "alice", "status": "active"})
            refused = (401, {"error": "invalid login, password or code"})
            credentials = {"login": "alice", "password": PASSWORD}
            assert post(base, "/auth/login", credentials) == refused  # no code
            assert post(base, "/auth/login", {**credentials, "code": "000000"
                                              if totp.now() != "000000" else "111111"}) == refused
            code = next_code(totp, used)
            status, session = post(base, "/auth/login", {**credentials, "code": code})
            assert status == 200 and session["principal"]["tenants"] == ["acme"]
            assert post(base, "/auth/login", {**credentials, "code": code}) == refused  # replay
            token = session["token"]
            listed = vigil(conf, data, "alerts", "list", env={"VIGIL_TOKEN": token,
                                                             "VIGIL_API": base})
            assert listed.returncode == 0, listed.stderr
            assert "0 of 0 alert(s)" in listed.stdout
            outputs = [listed.stdout + listed.stderr]
            for args in (("users", "list"), ("users", "review"), ("users", "list", "--json"),
                         ("tenants", "show", "acme")):
                result = vigil(conf, data, *args)
                assert result.returncode == 0, result.stderr
                outputs.append(result.stdout + result.stderr)
            assert "alice" in outputs[1] and "never activated: 0" in outputs[2]

            # Lost phone: the CLI resets alice while the daemon runs (same store, same key).
            reset = vigil(conf, data, "users", "reset", "alice", "--reason", "lost phone")
            assert reset.returncode == 0, reset.stderr
            outputs.append(reset.stdout + reset.stderr)
            revoked = urllib.request.Request(f"{base}/api/v1/alerts",
                                             headers={"Authorization": f"Bearer {token}"})
            with pytest.raises(urllib.error.HTTPError) as refused_token:
                urllib.request.urlopen(revoked, timeout=10)
            assert refused_token.value.code == 401
            renewed = body_text(smtp.wait(2)[1])
            new_secret = _otpauth_secret(renewed)
            assert new_secret != secret and new_secret not in reset.stdout + reset.stderr
            new_link = re.search(r"(http://\S+/api/v1/auth/activate\?\S+)", reset.stdout)
            assert new_link, reset.stdout
            new_token = urllib.parse.parse_qs(urllib.parse.urlparse(new_link.group(1)).query)
            status, body = post(base, "/auth/activate", {
                "login": "alice", "token": new_token["token"][0], "password": PASSWORD,
                "code": pyotp.TOTP(new_secret).now()})
            assert (status, body) == (200, {"login": "alice", "status": "active"})
        finally:
            assert daemon.stop() == 0
        logs = daemon.log()
        assert "login refused" in logs and "account activated" in logs
        for secret_value in (secret, PASSWORD, token, activation_token):
            assert secret_value not in logs
            for output in outputs:
                assert secret_value not in output
        # The activation token is printed once, in the `add` output, by design.
        assert added.stdout.count(activation_token) == 1
        # The store holds hashes and sealed values only (the WAL too: it holds fresh pages).
        stored = b"".join(p.read_bytes() for p in data.glob("alerts.db*"))
        for secret_value in (token, activation_token, PASSWORD, secret, new_secret):
            assert secret_value.encode() not in stored
        assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
