"""SigmaHQ rules of the logsources served since issue 17 fire on events the shipped conf.d
pipelines made from producer-shaped input (auditd, ECS endpoint events, Zeek, Squid, Kubernetes
audit, OpenCanary, Defender): the mapping's field names are the ones the pipelines write.
Skips when ../shared/data is absent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from support.daemon import REPO, SHARED_DATA

from collector.config import load_config
from collector.offline import OfflineRun
from rules.engine import DetectionEngine
from rules.loader import load_rules

SIGMA = SHARED_DATA / "sigma" / "rules"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not SIGMA.is_dir(), reason=f"SigmaHQ rules not under {SIGMA}")

WHOAMI = {
    "@timestamp": "2023-06-14T09:12:01.123Z",
    "data_stream": {"dataset": "endpoint.events.process", "type": "logs"},
    "event": {"category": ["process"], "type": ["start"], "kind": "event", "action": "exec"},
    "host": {"hostname": "web-01", "os": {"type": "linux"}},
    "process": {"executable": "/usr/bin/whoami", "command_line": "whoami", "pid": 4242,
                "parent": {"executable": "/usr/sbin/apache2", "pid": 1201}},
    "user": {"name": "www-data"},
}
SYSMON_BASH = (
    '<14>Oct 26 14:03:21 ubuntu sysmon: <Event><System><Provider Name="Linux-Sysmon" '
    'Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/><EventID>1</EventID><Version>5</Version>'
    '<TimeCreated SystemTime="2021-10-26T14:03:21.569716000Z"/><EventRecordID>13'
    '</EventRecordID><Channel>Linux-Sysmon/Operational</Channel><Computer>ubuntu</Computer>'
    '</System><EventData><Data Name="ProcessId">2461</Data><Data Name="Image">/usr/bin/nc'
    '</Data><Data Name="CommandLine">nc 203.0.113.5 4444</Data><Data Name="CurrentDirectory">'
    '/tmp</Data><Data Name="User">www-data</Data><Data Name="ParentImage">/usr/bin/bash</Data>'
    '<Data Name="ParentCommandLine">bash -i</Data></EventData></Event>')
K8S_DELETE_EVENTS = {
    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
    "auditID": "0b7e3c1e-1111-4222-8333-944455556666", "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/events/nginx.17a", "verb": "delete",
    "user": {"username": "mallory"}, "sourceIPs": ["172.18.0.9"],
    "objectRef": {"resource": "events", "namespace": "default", "name": "nginx.17a"},
    "responseStatus": {"code": 200},
    "requestReceivedTimestamp": "2023-10-04T12:20:00.000000Z",
}
ZEEK_MINING_DNS = {
    "ts": 1591367999.305988, "uid": "CMdzit1AMNsmfAIiQc", "id.orig_h": "192.168.4.76",
    "id.orig_p": 36844, "id.resp_h": "192.168.4.1", "id.resp_p": 53, "proto": "udp",
    "query": "pool.supportxmr.com", "qtype_name": "A", "rcode_name": "NOERROR",
}
OPENCANARY_FTP = {"dst_host": "10.0.0.5", "dst_port": 21, "logtype": 2000,
                  "local_time": "2015-07-20 13:38:21.281259", "node_id": "AlertTest",
                  "logdata": {"PASSWORD": "default", "USERNAME": "admin"},
                  "src_host": "10.0.0.6", "src_port": 49635}
DEFENDER_MIMIKATZ = {
    "@timestamp": "2024-02-07T10:21:44.512Z",
    "winlog": {"channel": "Microsoft-Windows-Windows Defender/Operational", "event_id": "1116",
               "provider_name": "Microsoft-Windows-Windows Defender",
               "event_data": {"Threat Name": "HackTool:Win32/Mimikatz.D",
                              "Path": "file:_C:\\Users\\alice\\Downloads\\m.exe",
                              "Process Name": "C:\\Windows\\explorer.exe"}},
}

GCP_FIREWALL_PATCH = {
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "admin@example.com"},
        "requestMetadata": {"callerIp": "216.160.83.56"},
        "serviceName": "compute.googleapis.com", "methodName": "v1.compute.firewalls.patch",
        "authorizationInfo": [{"permission": "compute.firewalls.update", "granted": True}],
        "resourceName": "projects/example-project/global/firewalls/allow-ssh"},
    "insertId": "-8t3ftwe1m3ty", "resource": {"type": "gce_firewall_rule",
                                               "labels": {"project_id": "example-project"}},
    "timestamp": "2020-06-25T20:01:31.953Z", "severity": "NOTICE",
    "logName": "projects/example-project/logs/cloudaudit.googleapis.com%2Factivity",
}

# rule file -> (source, input line, dataset it must fire on)
CASES: dict[str, tuple[str, str, str]] = {
    "linux/auditd/lnx_auditd_disable_aslr_protection.yml": (
        "syslog_tcp", '<14>Dec  6 04:00:00 host1 audispd: type=EXECVE '
        'msg=audit(1701835200.123:4711): argc=3 a0="sysctl" a1="-w" '
        'a2="kernel.randomize_va_space=0"', "linux.audit"),
    "linux/process_creation/proc_creation_lnx_webshell_detection.yml": (
        "tcp_json", json.dumps(WHOAMI), "endpoint.events"),
    "linux/process_creation/proc_creation_lnx_susp_interactive_bash.yml": (
        "syslog_tcp", SYSMON_BASH, "linux.sysmon"),
    "application/kubernetes/audit/kubernetes_audit_events_deleted.yml": (
        "tcp_json", json.dumps(K8S_DELETE_EVENTS), "kubernetes.audit"),
    "network/zeek/zeek_dns_mining_pools.yml": (
        "tcp_json", json.dumps(ZEEK_MINING_DNS), "zeek"),
    "web/proxy_generic/proxy_ua_rclone.yml": (
        "syslog_tcp", '<166>Oct  8 11:12:03 proxy squid[2345]: 192.168.0.68 - - '
        '[08/Oct/2010:11:12:03 +0000] "PUT https://files.example.net/b/x.zip HTTP/1.1" 200 '
        '1024 "-" "rclone/v1.62.2" TCP_MISS:HIER_DIRECT', "squid.access"),
    "application/opencanary/opencanary_ftp_login_attempt.yml": (
        "tcp_json", json.dumps(OPENCANARY_FTP), "opencanary"),
    "category/antivirus/av_password_dumper.yml": (
        "tcp_json", json.dumps(DEFENDER_MIMIKATZ), "windows.event"),
    # Sigma's GCP rules name Elastic's `gcp.audit.method_name` (protoPayload.methodName).
    "cloud/gcp/audit/gcp_firewall_rule_modified_or_deleted.yml": (
        "tcp_json", json.dumps(GCP_FIREWALL_PATCH), "gcp.audit"),
}


def parsed(source: str, line: str) -> tuple[str, dict[str, Any]]:
    config = load_config(REPO / "conf.d")
    offline = OfflineRun(config, REPO / "conf.d", clock=lambda: NOW)
    try:
        batches = offline.process_lines(source, [line.encode()], tenant="demo")
    finally:
        offline.close()
    (event,) = [e for b in batches for e in b.events]
    return event["vigil.dataset"], event


@pytest.mark.parametrize("rule_file", sorted(CASES))
def test_sigmahq_rule_fires_on_the_shipped_pipeline_output(rule_file: str) -> None:
    source, line, dataset = CASES[rule_file]
    got_dataset, event = parsed(source, line)
    assert got_dataset == dataset
    ruleset = load_rules([SIGMA / rule_file])
    assert ruleset.errors == [] and ruleset.unserved == [] and len(ruleset.rules) == 1
    matches = DetectionEngine(ruleset).evaluate(dataset, [event], "demo")
    assert [m.rule.id for m in matches] == [ruleset.rules[0].info.id], event
