"""`vigil sla report` and `vigil users list|review|disable|enable|reset` on a store no daemon
holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, make_alert, write_conf

from collector.cli import main
from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.alerts.store import AlertStore
from soc.auth.directory import UserDirectory


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    return conf, data


def test_sla_report_table_and_json(setup: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    conf, data = setup
    args = ["-c", str(conf), "--data-dir", str(data)]
    assert main(["sla", "report", *args]) == 66  # no store yet: EX_NOINPUT
    assert "no alert store yet" in capsys.readouterr().err
    store = AlertStore(Database(data / "alerts.db"))
    store.upsert([make_alert("acme", severity="critical")], "acme")
    store.upsert([make_alert("bravo", severity="high")], "bravo")
    store.resolve(make_alert("acme", severity="critical")["alert.id"], Actor("ana", None),
                  "true_positive")
    assert main(["sla", "report", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["TENANT", "SEVERITY", "ALERTS", "OPEN"]
    assert lines[2].split()[:4] == ["acme", "critical", "1", "0"]
    assert lines[2].split()[-3:] == ["100.0%", ">=95%", "ok"]
    assert main(["sla", "report", "--tenant", "bravo", "--json", *args]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["tenant"], r["severity"], r["open"]) for r in rows] == [
        ("bravo", "high", 1), ("bravo", "all", 1)]
    assert main(["sla", "report", "--tenant", "zulu", *args]) == 64  # EX_USAGE
    assert main(["sla", "report", "--since", "yesterday", *args]) == 64


def test_users_list_review_and_disable(setup: tuple[Path, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    conf, data = setup
    args = ["-c", str(conf), "--data-dir", str(data)]
    directory = UserDirectory(Database(data / "alerts.db"))
    directory.add_user("ghost", "Ghost", "g@example.com", "client_viewer", ["acme"],
                       Actor("root", None))
    directory.add_user("ciso", "Ciso", "c@example.com", "client_operator", ["acme", "bravo"],
                       Actor("root", None))
    assert main(["users", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "ghost" in out and "acme,bravo" in out
    assert main(["users", "review", "--json", *args]) == 0
    review = json.loads(capsys.readouterr().out)
    assert [u["login"] for u in review["never_activated"]] == ["ciso", "ghost"]
    assert [u["login"] for u in review["multi_tenant"]] == ["ciso"]
    assert main(["users", "review", "--disable-inactive", *args]) == 0
    assert "disabled: ciso, ghost" in capsys.readouterr().out
    assert {u.login: u.status for u in directory.users()} == {"ciso": "disabled",
                                                               "ghost": "disabled"}
    assert main(["users", "disable", "nobody", *args]) == 1
    assert main(["users", "add", "xavier", "--email", "x@example.com", "--role", "soc_l1",
                 "--tenant", "acme", *args]) == 69  # the SMTP server is not there
    assert "user not created" in capsys.readouterr().err
    assert directory.get("xavier") is None
    assert main(["users", "reset", "nobody", *args]) == 1
    assert "cannot reset user: no user 'nobody'" in capsys.readouterr().err
    assert main(["users", "reset", "ciso", *args]) == 1  # disabled above
    assert "is disabled" in capsys.readouterr().err
    directory.add_user("yves", "Yves", "y@example.com", "soc_l1", ["acme"], Actor("root", None))
    assert main(["users", "reset", "yves", *args]) == 69
    assert "the reset stands: run `vigil users reset yves` again" in capsys.readouterr().err
    assert directory.get("yves").status == "pending"  # type: ignore[union-attr]


def test_the_first_user_without_a_mail_server(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`--show-enrollment` prints the TOTP enrollment (QR and otpauth URI) instead of mailing
    it, so the first administrator of a host without mail can enroll; the link activates."""
    import re
    import urllib.parse

    import pyotp

    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, "tenants: {acme: {name: ACME}}", "10-tenants.yaml")  # no notifier at all
    args = ["-c", str(conf), "--data-dir", str(data)]
    assert main(["users", "add", "boss", "--email", "boss@example.com", "--role",
                 "platform_admin", *args]) == 78  # without the flag: mail is required
    assert "no notifier of type email" in capsys.readouterr().err
    assert main(["users", "add", "boss", "--email", "boss@example.com", "--role",
                 "platform_admin", "--show-enrollment", *args]) == 0
    out = capsys.readouterr().out
    assert "mailed to" not in out and "user boss added" in out
    uri = re.search(r"otpauth URI: (otpauth://\S+)", out)
    link = re.search(r"activate\?(\S+)", out)
    assert uri and link
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri.group(1)).query)["secret"][0]
    token = urllib.parse.parse_qs(link.group(1))["token"][0]
    directory = UserDirectory(Database(data / "alerts.db"))
    user = directory.activate("boss", token, "first admin passphrase 2026",
                              pyotp.TOTP(secret).now())
    assert user.status == "active"


def test_users_review_takes_a_duration_and_is_audited(setup: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`vigil users review --inactive 90d`; the review itself (who, when, what it listed)
    goes to the audit trail, like the console's."""
    conf, data = setup
    args = ["-c", str(conf), "--data-dir", str(data)]
    directory = UserDirectory(Database(data / "alerts.db"))
    directory.add_user("ghost", "Ghost", "g@example.com", "client_viewer", ["acme"],
                       Actor("root", None))
    assert main(["users", "review", "--inactive", "30d", *args]) == 0
    assert "inactive (no login for 30 days): 0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["users", "review", "--inactive", "2h", *args])
    assert "at least 1d" in capsys.readouterr().err
    records, _ = AlertStore(Database(data / "alerts.db")).audit(Actor("test", None))
    reviews = [r for r in records if r["action"] == "access_review"]
    assert len(reviews) == 1 and reviews[0]["actor"].startswith("cli:")
    assert reviews[0]["after"]["inactive_days"] == 30
    assert reviews[0]["after"]["never_activated"] == ["ghost"]


def test_users_enable_brings_a_disabled_user_back(setup: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`vigil users enable LOGIN --reason ...`: a disabled user is active again (pending if it
    never activated), audited with the operator and the reason; anything else is refused."""
    conf, data = setup
    args = ["-c", str(conf), "--data-dir", str(data)]
    directory = UserDirectory(Database(data / "alerts.db"))
    directory.add_user("ghost", "Ghost", "g@example.com", "client_viewer", ["acme"],
                       Actor("root", None))
    assert main(["users", "disable", "ghost", "--reason", "contract gap", *args]) == 0
    capsys.readouterr()
    assert main(["users", "list", *args]) == 0
    listed = capsys.readouterr().out
    assert "disabled" in listed and "by cli:" in listed
    assert main(["users", "review", *args]) == 0
    assert "disabled accounts: 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the reason is required
        main(["users", "enable", "ghost", *args])
    capsys.readouterr()
    assert main(["users", "enable", "ghost", "--reason", "new contract", *args]) == 0
    out = capsys.readouterr().out
    assert "user ghost enabled" in out and "pending" in out and "vigil users reset" in out
    user = directory.get("ghost")
    assert user is not None and user.status == "pending"
    assert user.enabled_by is not None and user.enabled_by.startswith("cli:")
    assert main(["users", "enable", "ghost", "--reason", "again", *args]) == 1
    assert "is not disabled" in capsys.readouterr().err
    assert main(["users", "enable", "nobody", "--reason", "x", *args]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err
    records, _ = AlertStore(Database(data / "alerts.db")).audit(Actor("test", None))
    enabled = [r for r in records if r["action"] == "user_enable"]
    assert len(enabled) == 1 and enabled[0]["actor"].startswith("cli:")
    assert enabled[0]["after"] == {"login": "ghost", "status": "pending",
                                   "reason": "new contract"}
