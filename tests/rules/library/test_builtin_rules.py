"""Every built-in rule (rules/library) on lines that go through the shipped conf.d pipelines and
the daemon's detection stage: what must alert does, once, and the near misses do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.daemon import REPO

from collector.config import load_config
from collector.detection.stage import BUILTIN_RULES, DetectionStage
from collector.offline import OfflineRun
from core.events import ALERTS
from rules.loader import load_rules

CONF = REPO / "conf.d"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULESET = load_rules([BUILTIN_RULES])


class Detector:
    """The shipped configuration's pipelines plus a detection stage with the built-in rules."""

    def __init__(self, tmp_path: Path) -> None:
        config = load_config(CONF)
        self.offline = OfflineRun(config, CONF, clock=lambda: NOW)
        self.stage = DetectionStage(config, CONF, tmp_path, None, lambda: NOW, RULESET)

    def run(self, source: str, lines: list[str], tenant: str = "demo") -> list[dict]:
        batches = self.offline.process_lines(source, [line.encode() for line in lines],
                                             tenant=tenant)
        out = self.stage.process(batches)
        return [a for b in out if b.kind == ALERTS for a in b.events]


@pytest.fixture
def detector(tmp_path: Path):
    found = Detector(tmp_path)
    yield found
    found.offline.close()


def titles(alerts: list[dict]) -> list[str]:
    return sorted(a["rule.name"] for a in alerts)


def ssh(minute: int, second: int, text: str, day: int = 23) -> str:
    return f"<38>Nov {day} 10:{minute:02d}:{second:02d} web1 sshd[7]: {text}"


def failed(user: str, ip: str) -> str:
    return f"Failed password for {user} from {ip} port 40000 ssh2"


def test_ssh_brute_force(detector: Detector) -> None:
    nine = [ssh(0, i, failed("root", "203.0.113.9")) for i in range(9)]
    assert detector.run("syslog_tcp", nine) == []
    (alert,) = detector.run("syslog_tcp", [ssh(0, 30, failed("root", "203.0.113.9"))])
    assert alert["rule.name"] == "SSH brute force from one source"
    assert json.loads(alert["alert.group_key"]) == {"source.address": "203.0.113.9"}
    assert (alert["alert.severity"], alert["alert.value"]) == ("high", 10)
    assert alert["threat.technique.id"] == ["T1110.001"]
    assert alert["rule.runbook"] == "https://vigil.example/runbooks/ssh-brute-force"


def test_ssh_failures_spread_over_time_are_no_brute_force(detector: Detector) -> None:
    slow = [ssh(i, 0, failed("root", "203.0.113.9")) for i in range(0, 60, 6)]  # 10 in 54 min
    assert detector.run("syslog_tcp", slow) == []


def test_password_spraying(detector: Detector) -> None:
    users = ["alice", "bob", "carol", "dave"]
    assert detector.run("syslog_tcp", [ssh(1, i, failed(u, "198.18.0.4"))
                                       for i, u in enumerate(users)]) == []
    (alert,) = detector.run("syslog_tcp", [ssh(2, 0, failed("erin", "198.18.0.4"))])
    assert alert["rule.name"] == "SSH password spraying from one source"
    assert alert["alert.value"] == 5


def test_success_after_failures(detector: Detector) -> None:
    lines = [ssh(0, 0, failed("alice", "198.18.0.7")),
             ssh(0, 5, "Accepted password for alice from 198.18.0.7 port 40001 ssh2")]
    (alert,) = detector.run("syslog_tcp", lines)
    assert alert["rule.name"] == "SSH login succeeded after failures from the same source"
    assert json.loads(alert["alert.group_key"]) == {"source.address": "198.18.0.7",
                                                    "user.name": "alice"}
    other_ip = [ssh(1, 0, failed("bob", "198.18.0.8")),
                ssh(1, 5, "Accepted password for bob from 198.18.0.9 port 40001 ssh2")]
    assert detector.run("syslog_tcp", other_ip) == []


def fortigate(second: int, port: int, action: str = "accept",
              src: str = "203.0.113.50") -> str:
    return (f'<189>date=2026-11-23 time=10:00:{second:02d} devname="FG100E" '
            f'devid="FG100E4Q17000001" logid="0000000013" type="traffic" subtype="forward" '
            f'level="notice" vd="root" srcip={src} srcport=40000 srcintf="wan1" '
            f'dstip=10.0.0.5 dstport={port} dstintf="internal" policyid=0 sessionid=1 '
            f'proto=6 action="{action}" service="tcp/{port}" sentbyte=0 rcvdbyte=0')


def test_port_scan(detector: Detector) -> None:
    assert detector.run("syslog_tcp", [fortigate(i, 1000 + i) for i in range(24)]) == []
    repeated = detector.run("syslog_tcp", [fortigate(30, 1000)])  # not a new port
    assert repeated == []
    (alert,) = detector.run("syslog_tcp", [fortigate(31, 2000)])
    assert alert["rule.name"] == "Port scan from one source"
    assert alert["alert.value"] == 25


def test_firewall_deny_spike(detector: Detector) -> None:
    lines = [fortigate(i % 60, 22, "deny") for i in range(99)]
    assert detector.run("syslog_tcp", lines) == []
    assert titles(detector.run("syslog_tcp", [fortigate(59, 22, "deny")])) == \
        ["Spike of denied connections from one source"]


def test_login_from_a_new_country(detector: Detector) -> None:
    login = "Accepted password for {} from {} port 40000 ssh2"
    learning = [ssh(0, 0, login.format("alice", "81.2.69.160"), day=20),   # GB, first seen
                ssh(0, 0, login.format("alice", "89.160.20.112"), day=20)]  # SE, still learning
    assert detector.run("syslog_tcp", learning) == []
    later = [ssh(0, 0, login.format("alice", "81.2.69.161"), day=22),      # GB again
             ssh(0, 0, login.format("bob", "175.16.199.1"), day=22),       # a new user: learns
             ssh(1, 0, login.format("alice", "216.160.83.56"), day=22)]    # US: new
    (alert,) = detector.run("syslog_tcp", later)
    assert alert["rule.name"] == "Login from a country never seen for the user"
    assert json.loads(alert["alert.group_key"]) == {"source.geo.country_iso_code": "US",
                                                    "user.name": "alice"}


def sudo(day: int, user: str) -> str:
    return (f"<86>Nov {day} 10:00:00 web1 sudo:    {user} : TTY=pts/0 ; PWD=/home/{user} ; "
            "USER=root ; COMMAND=/bin/ls")


def test_first_sudo_to_root(detector: Detector) -> None:
    assert detector.run("syslog_tcp", [sudo(20, "alice")]) == []
    (alert,) = detector.run("syslog_tcp", [sudo(22, "bob"), sudo(22, "alice")])
    assert alert["rule.name"] == "Sudo to root by a user who never did it before"
    assert json.loads(alert["alert.group_key"])["user.name"] == "bob"


def cloudtrail(event_name: str, source: str, *, identity: str = "IAMUser",
               mfa: str = "Yes", result: str = "Success") -> str:
    record = {
        "eventVersion": "1.08", "eventTime": "2026-11-23T10:00:00Z", "eventSource": source,
        "eventName": event_name, "awsRegion": "us-east-1", "sourceIPAddress": "81.2.69.160",
        "userIdentity": {"type": identity, "accountId": "123456789012",
                         "arn": f"arn:aws:iam::123456789012:{identity.lower()}"},
        "requestParameters": {"name": "main-trail"} if source.startswith("cloudtrail") else None,
        "responseElements": {"ConsoleLogin": result} if event_name == "ConsoleLogin" else None,
        "additionalEventData": {"MFAUsed": mfa} if event_name == "ConsoleLogin" else None,
        "recipientAccountId": "123456789012", "eventID": f"{event_name}-{identity}-{mfa}"}
    return json.dumps(record)


@pytest.mark.parametrize(("record", "expected"), [
    (cloudtrail("ConsoleLogin", "signin.amazonaws.com", identity="Root"),
     ["AWS root account console login"]),
    (cloudtrail("ConsoleLogin", "signin.amazonaws.com", mfa="No"),
     ["AWS console login without MFA"]),
    (cloudtrail("ConsoleLogin", "signin.amazonaws.com", identity="Root", mfa="No"),
     ["AWS console login without MFA", "AWS root account console login"]),
    (cloudtrail("ConsoleLogin", "signin.amazonaws.com", mfa="No", result="Failure"), []),
    (cloudtrail("ConsoleLogin", "signin.amazonaws.com"), []),
    (cloudtrail("AttachUserPolicy", "iam.amazonaws.com"), ["AWS IAM policy changed"]),
    (cloudtrail("ListPolicies", "iam.amazonaws.com"), []),
    (cloudtrail("StopLogging", "cloudtrail.amazonaws.com"),
     ["AWS CloudTrail logging tampered with"]),
    (cloudtrail("LookupEvents", "cloudtrail.amazonaws.com"), []),
])
def test_cloudtrail_rules(detector: Detector, record: str, expected: list[str]) -> None:
    assert titles(detector.run("tcp_json", [record])) == expected


def nginx(second: int, status: int, ip: str = "203.0.113.7") -> str:
    return (f'<190>Nov 23 10:00:{second:02d} web1 nginx: {ip} - - [23/Nov/2026:10:00:{second:02d}'
            f' +0000] "GET /probe{second}.php HTTP/1.1" {status} 162 "-" "sqlmap/1.7"')


def test_web_scanning(detector: Detector) -> None:
    assert detector.run("syslog_tcp", [nginx(i, 200) for i in range(40)]) == []
    assert detector.run("syslog_tcp", [nginx(i, 404) for i in range(29)]) == []
    assert titles(detector.run("syslog_tcp", [nginx(45, 404)])) == ["Web scanning from one source"]


def test_every_builtin_rule_has_a_test() -> None:
    """The library and this file stay in step: a rule without a case here fails."""
    tested = {"SSH brute force from one source", "SSH password spraying from one source",
              "SSH login succeeded after failures from the same source",
              "Port scan from one source",
              "Spike of denied connections from one source",
              "Login from a country never seen for the user",
              "Sudo to root by a user who never did it before", "AWS root account console login",
              "AWS console login without MFA", "AWS IAM policy changed",
              "AWS CloudTrail logging tampered with", "Web scanning from one source",
              "SSH brute force from one source (PAM failures)",
              "SSH password spraying from one source (PAM failures)"}
    alerting = {r.info.title for r in RULESET.rules if r.emits} | \
        {c.info.title for c in RULESET.correlations}
    assert alerting == tested
    assert not RULESET.errors and not RULESET.unserved
    assert all(r.info.tactics and r.info.techniques for r in RULESET.rules if r.emits)


def test_pam_only_failures_with_host_names_are_a_brute_force(detector: Detector) -> None:
    """A host whose sshd logs only PAM's lines (the older `sshd(pam_unix)` form, loghub's
    Linux log) and a peer logged by name (`rhost=<host name>`): the PAM brute force fires,
    grouped by the name as logged; `PAM N more authentication failures` weighs N."""
    host = "d211-116-254-214.rev.krline.net"
    old = [f"<38>Nov 23 10:00:{s:02d} combo sshd(pam_unix)[19939]: authentication failure; "
           f"logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={host}  user=root"
           for s in range(6)]
    assert detector.run("syslog_tcp", old) == []
    more = [f"<38>Nov 23 10:00:30 combo sshd[19940]: PAM 4 more authentication failures; "
            f"logname= uid=0 euid=0 tty=ssh ruser= rhost={host}  user=root"]
    (alert,) = detector.run("syslog_tcp", more)
    assert alert["rule.name"] == "SSH brute force from one source (PAM failures)"
    assert json.loads(alert["alert.group_key"]) == {"source.address": host}
    assert alert["alert.value"] == 10


def test_pam_failures_for_many_users_are_spraying(detector: Detector) -> None:
    lines = [f"<38>Nov 23 10:01:{i:02d} web1 sshd[{100 + i}]: pam_unix(sshd:auth): "
             f"authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
             f"rhost=198.18.0.44  user={user}"
             for i, user in enumerate(["alice", "bob", "carol", "dave", "erin"])]
    (alert,) = detector.run("syslog_tcp", lines)
    assert alert["rule.name"] == "SSH password spraying from one source (PAM failures)"
    assert json.loads(alert["alert.group_key"]) == {"source.address": "198.18.0.44"}
