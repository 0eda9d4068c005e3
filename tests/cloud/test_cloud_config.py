"""Configuration of the cloud sources and the S3 lake: `vigil validate` names each missing or
bad setting at its file:line:col, the documented examples in conf.d/25-cloud.yaml validate (but
for what only a deployment has: its credential files and tenants), and the cloud SDKs are
imported only when a configuration uses them - not even `vigil validate` of one imports them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.daemon import REPO

from collector.config import load_config
from core.errors import ConfigErrors


def errors_of(conf: Path, text: str) -> list[str]:
    conf.mkdir(exist_ok=True)
    (conf / "10.yaml").write_text("tenants:\n  demo: {name: Demo}\n" + textwrap.dedent(text))
    with pytest.raises(ConfigErrors) as info:
        load_config(conf)
    return [str(e).replace(str(conf) + "/", "") for e in info.value.errors]


def test_missing_and_bad_settings_are_located(tmp_path: Path) -> None:
    assert errors_of(tmp_path, """
    sources:
      trail:
        type: s3_sqs
        tenant: demo
        aws: {role_arn: 'arn:aws:iam::1:role/x', region: Europe}
      audit:
        type: pubsub
        tenant: demo
        subscription: my-subscription
      hub:
        type: eventhubs
        tenant: demo
        connection: {}
        checkpoint_store: {type: blob}
    sinks:
      lake:
        type: s3_lake
        bucket: Not_A_Bucket
    """) == [
        "10.yaml:5:3: sources.trail.queue_url: required key is missing",
        "10.yaml:8:21: sources.trail.aws.role_arn: 'arn:aws:iam::1:role/x' is not an IAM role "
        "ARN (arn:aws:iam::123456789012:role/name)",
        "10.yaml:8:54: sources.trail.aws.region: 'Europe' is not an AWS region name like "
        "eu-west-1",
        "10.yaml:12:19: sources.audit.subscription: 'my-subscription' is not a subscription "
        "path like projects/my-project/subscriptions/audit-logs",
        "10.yaml:13:3: sources.hub.eventhub_name: required key is missing",
        "10.yaml:16:17: sources.hub.connection: give exactly one of `connection_string_file` "
        "and `connection_string_env`",
        "10.yaml:17:5: sources.hub.checkpoint_store.blob.container: required key is missing",
        "10.yaml:21:13: sinks.lake.bucket: 'Not_A_Bucket' is not an S3 bucket name",
    ]


def test_documented_examples_validate(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    subprocess.run(["cp", "-r", str(REPO / "conf.d"), str(conf)], check=True)
    example = conf / "25-cloud.yaml"
    lines = example.read_text().splitlines()
    # Uncomment the examples (YAML lines), leaving the prose comments as they are.
    uncommented = [line[2:] if line.startswith("# ") and (
        line[2:3] == " " or line[2:].split(":")[0] in ("sources", "sinks")) else line
        for line in lines]
    example.write_text("\n".join(uncommented) + "\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(conf)
    problems = sorted(str(e).split(": ", 1)[1] for e in info.value.errors)
    assert problems == [
        "sources.azure_logs.connection.connection_string_file: connection string file not "
        "found: /etc/vigil/credentials/eventhub-demo.conn",
        "sources.gcp_audit.credentials_file: credentials file not found: "
        "/etc/vigil/credentials/gcp-demo.json",
        "sources.org_trail.routes[1].tenant: unknown tenant 'acme'",
    ]
    load_config(REPO / "conf.d")  # as shipped (commented out): valid


SDKS = ("boto3", "botocore", "google.cloud.pubsub_v1", "azure.eventhub")


def imported_sdks(conf: Path) -> list[str]:
    code = textwrap.dedent(f"""
        import sys
        from collector.config import load_config
        from core.registry import resolve
        config = load_config({str(conf)!r})
        for source in config.sources.values():
            resolve("source", source.type)
        print(",".join(m for m in {SDKS!r} if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def _three_cloud_sources(tmp_path: Path) -> Path:
    """A conf.d with one source of each cloud kind (validates without credentials)."""
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "10.yaml").write_text(textwrap.dedent("""
        tenants: {demo: {name: Demo}}
        sources:
          trail: {type: s3_sqs, tenant: demo,
                  queue_url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/q'}
          audit: {type: pubsub, tenant: demo, subscription: projects/demo-1/subscriptions/sub1}
          hub: {type: eventhubs, tenant: demo, eventhub_name: h,
                connection: {connection_string_env: X}}
    """))
    return conf


def test_cloud_sdks_are_imported_only_when_used(tmp_path: Path) -> None:
    assert imported_sdks(REPO / "conf.d") == []
    conf = _three_cloud_sources(tmp_path)
    assert imported_sdks(conf) == []  # validating them does not need the SDKs either


def test_vigil_process_decodes_lines_like_each_source(tmp_path: Path) -> None:
    """`vigil process` / `vigil test` through a cloud source: a line is one S3 object, one
    Pub/Sub message's data, one Event Hubs event body."""
    from collector.offline import OfflineRun

    conf = _three_cloud_sources(tmp_path)
    run = OfflineRun(load_config(conf), conf)
    try:
        trail = run.process_lines("trail", [b'{"Records": [{"eventName": "A"}, '
                                            b'{"eventName": "B"}]}'])
        audit = run.process_lines("audit", [b'{"logName": "x", "timestamp": '
                                            b'"2024-05-14T09:30:00Z"}', b"text"])
        hub = run.process_lines("hub", [b'{"records": [{"a": 1}, {"a": 2}]}'])
    finally:
        run.close()
    assert [e["eventName"] for b in trail for e in b.events] == ["A", "B"]
    assert [e.get("logName", e.get("message")) for b in audit for e in b.events] == ["x", "text"]
    assert [e["a"] for b in hub for e in b.events] == [1, 2]
