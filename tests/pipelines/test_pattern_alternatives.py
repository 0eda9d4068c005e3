"""Every format variant a shipped pipeline's grok/regex alternatives cover has a `vigil test`
case: each alternative of a first-match capture step must be the one that matched some case's
event. The alternatives no case reaches yet are listed below (pattern text, first 60
characters); the list may only shrink: a new pipeline or pattern without a case fails, and so
does an entry a new case has made unnecessary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from support.daemon import REPO

from collector.config import load_config
from collector.offline import OfflineRun
from parsers.grok.step import CaptureConfig, CaptureStep

CONF = REPO / "conf.d"

KNOWN_UNCOVERED: dict[str, list[str]] = {
    'linux_pam': [
        '%{PAM_HEAD}(?<system.auth.pam.event>password changed) for %{',
        '%{PAM_HEAD}(?<system.auth.pam.event>Consecutive login failur',
        '%{PAM_HEAD}(?<system.auth.pam.event>auth could not identify ',
        '%{PAM_HEAD}(?<system.auth.pam.event>conversation failed)',
        '%{GREEDYDATA}',
    ],
    'linux_sshd': [
        '(?<system.auth.ssh.event>Disconnected) from %{SSH_WHO}%{SSH_',
        '(?<system.auth.ssh.event>Disconnecting) %{SSH_WHO}%{SSH_ADDR',
        'error: (?<system.auth.ssh.event>maximum authentication attem',
        'Address %{SSH_ADDR:source.ip} maps to (?<source.domain>[^,\\s',
        '(?:error: )?PAM: (?<system.auth.ssh.event>Authentication fai',
        'User %{SSH_USER:user.name} from (?:%{SSH_ADDR:source.ip}|(?<',
        '(?<system.auth.ssh.event>Timeout before authentication) for ',
        '(?<system.auth.ssh.event>Unable to negotiate) with %{SSH_ADD',
        '(?<system.auth.ssh.event>Connection from) %{SSH_ADDR:source.',
        '(?<system.auth.ssh.event>Starting session): (?<system.auth.s',
        '(?<system.auth.ssh.event>subsystem request) for (?<system.au',
        '(?<system.auth.ssh.event>Received signal) %{INT}; terminatin',
    ],
    'linux_sudo': [
        '%{GREEDYDATA}',
    ],
    'linux_su': [
        'message repeated (?<event.count:int>\\d+) times: \\[ ?(?<linux',
        '(?<system.auth.su.result>FAILED SU) \\(to (?<user.effective.n',
        '\\((?<system.auth.su.result>to) (?<user.effective.name>\\S+)\\)',
        '%{GREEDYDATA}',
    ],
    'linux_accounts': [
        'message repeated (?<event.count:int>\\d+) times: \\[ ?(?<linux',
        'user (?<user.name>\\S+) (?<system.auth.account.event>added) b',
        "(?<system.auth.account.event>change user) '(?<user.name>[^']",
        "(?<system.auth.account.event>lock user|unlock user) '(?<user",
        '(?<system.auth.account.event>password changed) for (?<user.n',
        '%{GREEDYDATA}',
    ],
    'linux_logind': [
        'message repeated (?<event.count:int>\\d+) times: \\[ ?(?<linux',
        'Session (?<system.auth.session.id>\\S+) (?<system.auth.logind',
        '%{GREEDYDATA}',
    ],
    'linux_ftpd': [
        'message repeated (?<event.count:int>\\d+) times: \\[ ?(?<linux',
        '(?<system.auth.ftp.event>(?i:failed (?:ftp )?login|ftp login',
        '(?<system.auth.ftp.event>FTP LOGIN) FROM %{FTP_FROM}, (?<use',
        '%{GREEDYDATA}',
    ],
    'cisco_asa': [
        'AAA transaction status (?<cisco.asa.aaa_status>ACCEPT|REJECT',
        "User (?<user.name>\\S+) locked out on exceeding '%{INT}' succ",
        "User '(?<user.name>[^']*)', running '(?<cisco.asa.client>[^'",
        'Access denied URL (?<url.original>\\S+) SRC %{ASA_ADDR:source',
        'User logged out: Uname: (?<user.name>.*)',
    ],
    'nginx_access': [
        '(?<client.domain>.+)',
    ],
    'nginx_access_file_line': [
        '(?:%{WEB_VHOST} )?"(?<http.request.forwarded_for>%{WEB_CLIEN',
        '(?:%{WEB_VHOST} )?(?<http.request.forwarded_for>%{WEB_CLIENT',
        '(?<source.domain>.+)',
        '%{IP:destination.ip}',
        '%{IP:client.ip}',
        '(?<client.domain>.+)',
    ],
    'apache_access': [
        '(?:%{WEB_VHOST} )?"(?<http.request.forwarded_for>%{WEB_CLIEN',
        '(?:%{WEB_VHOST} )?(?<http.request.forwarded_for>%{WEB_CLIENT',
        '%{IP:client.ip}',
        '(?<client.domain>.+)',
    ],
    'apache_access_file_line': [
        '(?:%{WEB_VHOST} )?"(?<http.request.forwarded_for>%{WEB_CLIEN',
        '(?:%{WEB_VHOST} )?(?<http.request.forwarded_for>%{WEB_CLIENT',
        '%{IP:destination.ip}',
        '(?<destination.domain>.+)',
        '%{IP:client.ip}',
        '(?<client.domain>.+)',
    ],
}


def matched_alternatives() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(every alternative, the alternatives some case matched) per pipeline, as pattern text."""
    config = load_config(CONF)
    now = {"value": datetime.now(UTC)}
    offline = OfflineRun(config, CONF, clock=lambda: now["value"])
    every: dict[str, set[str]] = {}
    hit: dict[str, set[str]] = {}
    try:
        for pipeline in offline.pipelines.pipelines:
            every[pipeline.id], hit[pipeline.id] = set(), set()
            for bound in pipeline.steps:
                step = bound.step
                if not (isinstance(step, CaptureStep) and step.first_only
                        and len(step.matchers) > 1):
                    continue
                config_step: CaptureConfig = step.config
                wrapped = []
                for (match_fn, captures, needles), pattern in zip(
                        step.matchers, config_step.patterns, strict=True):
                    key = pattern[:60]
                    every[pipeline.id].add(key)

                    def recording(text: str, match_fn: Any = match_fn, key: str = key,
                                  seen: set[str] = hit[pipeline.id]) -> Any:
                        found = match_fn(text)
                        if found is not None:
                            seen.add(key)
                        return found
                    wrapped.append((recording, captures, needles))
                step.matchers = wrapped
        for case in config.section("tests").values():
            now["value"] = case.received_at or datetime.now(UTC)
            offline.process_lines(case.source, [case.line()], tenant=case.tenant,
                                  peer=case.peer)
    finally:
        offline.close()
    return every, hit


def test_every_pattern_alternative_has_a_case_or_is_listed() -> None:
    every, hit = matched_alternatives()
    uncovered = {pid: sorted(keys - hit[pid]) for pid, keys in every.items() if keys - hit[pid]}
    new = {pid: [k for k in keys if k not in KNOWN_UNCOVERED.get(pid, [])]
           for pid, keys in uncovered.items()}
    assert not {pid: keys for pid, keys in new.items() if keys}, (
        "pattern alternatives no `vigil test` case matches: add a case (from the vendor's "
        "published samples)")
    stale = {pid: [k for k in keys if k not in uncovered.get(pid, [])]
             for pid, keys in KNOWN_UNCOVERED.items()}
    assert not {pid: keys for pid, keys in stale.items() if keys}, (
        "these alternatives have a case now: remove them from KNOWN_UNCOVERED")


def test_the_alternative_check_sees_a_match() -> None:
    """Not vacuous: sshd's failed-password alternative is matched by its shipped case."""
    every, hit = matched_alternatives()
    assert len(every["linux_sshd"]) > 10
    assert any("Failed" in key or "Accepted" in key for key in hit["linux_sshd"])
