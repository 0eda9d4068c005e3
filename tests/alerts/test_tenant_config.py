"""Tenant contracts, SLAs, notifiers and the access policy in conf.d: bad values are reported
with FILE:LINE:COL: key.path: message, like every other configuration error; `vigil tenants`
prints the registry without a daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from alerts.kit import write_conf

from collector.cli import main
from collector.config import load_config
from core.errors import ConfigErrors

BAD = """
tenants:
  acme:
    name: ACME
    tier: managed-soc
    contact: {name: Ann, email: not-an-email}
    sla:
      critical: {ack: 15 minutes, resolve: 4h}
      high: {ack: 2h, resolve: 1h}
      medium: {ack: 0m, resolve: 1d}
    notifications:
      email:
        high: [secops@acme.example]
      webhooks: [acme_tickets, mail]
notifiers:
  mail_relay:
    type: mail
  hook:
    type: webhook
    url: ftp://x
    secret: s
  keyed:
    type: webhook
    url: https://x.example/h
    secret_file: missing.key
access:
  main:
    session_ttl: forever
"""


def test_errors_are_located_and_complete(tmp_path: Path) -> None:
    path = write_conf(tmp_path, BAD)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    f = str(path)
    assert [str(e) for e in info.value.errors] == [
        f"{f}:4:11: tenants.acme.tier: Input should be 'managed_soc' or 'siem_only'",
        f"{f}:5:33: tenants.acme.contact.email: 'not-an-email' is not an email address",
        f"{f}:7:23: tenants.acme.sla.critical.ack: '15 minutes' is not a duration like 15m, "
        "4h, 1d or 1h30m",
        f"{f}:8:13: tenants.acme.sla.high: `resolve` must not be shorter than `ack`",
        f"{f}:9:21: tenants.acme.sla.medium.ack: duration '0m' must be positive",
        f"{f}:16:11: notifiers.mail_relay.type: unknown notifier type 'mail' (did you mean "
        "'email'?); valid types: email, webhook",
        f"{f}:18:5: notifiers.hook: `url` must start with http:// or https://",
        f"{f}:24:18: notifiers.keyed.secret_file: file "
        f"'{tmp_path.resolve() / 'missing.key'}' does not exist",
        f"{f}:27:18: access.main.session_ttl: 'forever' is not a duration like 15m, 4h, 1d or "
        "1h30m",
    ]


def test_cross_section_checks(tmp_path: Path) -> None:
    path = write_conf(tmp_path, """
    tenants:
      acme:
        name: ACME
        notifications:
          email:
            high: [secops@acme.example]
          webhooks: [acme_tickets, soc]
    notifiers:
      soc:
        type: email
        host: 127.0.0.1
        sender: vigil@provider.example
      keyed:
        type: webhook
        url: https://x.example/h
        secret_file: missing.key
    access:
      default:
        enrollment_notifier: keyed
    """)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    f = str(path)
    assert [str(e) for e in info.value.errors] == [
        f"{f}:7:18: tenants.acme.notifications.webhooks[0]: notifier 'acme_tickets' is not "
        "declared under `notifiers:`",
        f"{f}:7:32: tenants.acme.notifications.webhooks[1]: notifier 'soc' is not a webhook "
        "under `notifiers:`",
        f"{f}:16:18: notifiers.keyed.secret_file: file "
        f"'{tmp_path.resolve() / 'missing.key'}' does not exist",
        f"{f}:19:26: access.default.enrollment_notifier: 'keyed' is not a notifier of type "
        "email",
    ]


def test_email_recipients_need_an_email_notifier(tmp_path: Path) -> None:
    write_conf(tmp_path, """
    tenants:
      acme:
        name: ACME
        notifications:
          email:
            critical: [secops@acme.example]
    """)
    with pytest.raises(ConfigErrors, match="tenants.acme.notifications.email: email "
                       "recipients are set but no notifier of type email is declared"):
        load_config(tmp_path)


def test_defaults_and_the_tenants_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    write_conf(tmp_path, """
    tenants:
      acme:
        name: ACME
        contract_id: C-9
        tier: siem_only
        sla:
          critical: {ack: 10m, resolve: 2h}
    """)
    config = load_config(tmp_path)
    sla = config.tenants["acme"].sla
    assert sla.critical.ack.total_seconds() == 600
    assert sla.high.ack.total_seconds() == 3600  # default kept
    assert main(["tenants", "list", "-c", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["acme", "ACME", "siem_only", "C-9", "10m/2h", "1h/1d"]
    assert main(["tenants", "show", "nope", "-c", str(tmp_path)]) == 64  # EX_USAGE
    assert main(["tenants", "show", "acme", "--json", "-c", str(tmp_path)]) == 0
    assert '"tier": "siem_only"' in capsys.readouterr().out


def test_the_secret_key_file_is_absolute_and_holds_a_key(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("not a key\n")
    path = write_conf(tmp_path, f"""
    access:
      default:
        secret_key_file: {tmp_path / "bad.key"}
    """)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    f = str(path)
    assert [str(e) for e in info.value.errors] == [
        f"{f}:3:22: access.default.secret_key_file: {tmp_path / 'bad.key'}: not a secret key "
        "(expected 32 bytes in base64)"]
    write_conf(tmp_path, """
    access:
      default:
        secret_key_file: keys/secret.key
    """)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    assert [str(e) for e in info.value.errors] == [
        f"{f}:3:22: access.default.secret_key_file: keys/secret.key must be an "
        "absolute path (the daemon and the CLI must find the same key)"]
    write_conf(tmp_path, f"""
    access:
      default:
        secret_key_file: {tmp_path / "not-yet" / "secret.key"}
    """)
    load_config(tmp_path)  # created on first use
