"""S3/SQS into the real daemon: CloudTrail files uploaded to a bucket whose notifications go to
SQS end up in the lake as `aws.cloudtrail` events of the source's tenant (through the shipped
CloudTrail pipeline), their messages deleted; a corrupt object lands in the tenant's dead letter
with its bucket, key and error while its message is kept (moved to the queue's SQS dead-letter
queue by the redrive policy); a daemon killed between download and journal append reads the
object again after restart, and only then is the message deleted.

Real: the daemon subprocess (journal, pipelines, lake, dead letter), boto3, and HTTP to a
moto server subprocess. Faked: AWS itself (moto implements S3, SQS and their notifications;
credentials are moto's dummy keys in the environment).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from cloud.moto_rig import (
    AWS_ENV,
    LogBucket,
    MotoServer,
    cloudtrail_file,
    cloudtrail_key,
    cloudtrail_record,
)
from support.daemon import VigilProcess, lake_rows, shipped_pipeline_conf, wait_for, write_conf

from collector.sources.aws.source import FAULT_HOLD_ENV
from sinks.dead_letter import dead_letter_files, read_dead_letters


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


def cloud_conf(tmp_path: Path, source: dict[str, Any],
               sinks: dict[str, Any] | None = None) -> Path:
    """A conf.d with the shipped CloudTrail pipeline, one tenant, the S3/SQS source and a lake
    flushing every 0.2 s."""
    return shipped_pipeline_conf(tmp_path / "conf.d", "36-aws-cloudtrail.yaml", "trail",
                                 {"type": "s3_sqs", **source}, sinks)


def source_settings(bucket: LogBucket, moto: MotoServer, **extra: Any) -> dict[str, Any]:
    return {"queue_url": bucket.queue_url, "wait_time_seconds": 1,
            "aws": {"endpoint_url": moto.url, "region": "us-east-1"},
            "backoff": {"initial_seconds": 0.1, "max_seconds": 1}, **extra}


def aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **AWS_ENV}


def test_cloudtrail_from_s3_to_the_lake_and_a_corrupt_object_to_the_dead_letter(
        tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = LogBucket(moto_server, max_receive_count=1)
    lake_bucket = f"{bucket.bucket}-lake"
    bucket.s3.create_bucket(Bucket=lake_bucket)
    s3_lake = {"type": "s3_lake", "bucket": lake_bucket, "prefix": "lake",
               "flush": {"max_seconds": 0.2},
               "aws": {"endpoint_url": moto_server.url, "region": "us-east-1"}}
    conf = cloud_conf(tmp_path, source_settings(bucket, moto_server), {"s3lake": s3_lake})
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data, env=aws_env())
    daemon.env = aws_env()
    daemon.start()
    try:
        login = cloudtrail_record(100, eventSource="signin.amazonaws.com",
                                  eventName="ConsoleLogin", eventType="AwsConsoleSignIn",
                                  responseElements={"ConsoleLogin": "Success"},
                                  sourceIPAddress="81.2.69.160")
        bucket.put(cloudtrail_key(1), cloudtrail_file([cloudtrail_record(i) for i in range(50)]))
        bucket.put(cloudtrail_key(2), cloudtrail_file([login]))
        bucket.put("AWSLogs/123456789012/CloudTrail/broken.json.gz", b"\x1f\x8b\x08\x00" * 9)
        wait_for(lambda: len(lake_rows(data)) == 51, 30, message="51 rows in the lake")
        dlq = data / "dlq"
        wait_for(lambda: dead_letter_files(dlq, "acme"), 30, message="the dead-letter file")
        assert bucket.dlq_url is not None
        wait_for(lambda: bucket.counts() == (0, 0) and bucket.counts(bucket.dlq_url)[0] == 1,
                 30, message="messages deleted, the corrupt one redriven")
        rows = lake_rows(data, "SELECT * FROM lake ORDER BY \"@timestamp\"")
        assert {(r["tenant"], r["vigil.dataset"]) for r in rows} == {("acme", "aws.cloudtrail")}
        (signin,) = [r for r in rows if r["event.action"] == "ConsoleLogin"]
        assert signin["event.category"] == ["authentication"]
        assert signin["source.geo.country_iso_code"] == "GB"
        assert signin["vigil.origin"] == f"s3://{bucket.bucket}/{cloudtrail_key(2)}"
        assert rows[0]["aws.cloudtrail.eventName"] == "StopInstances"
        (record,) = [r for f in dead_letter_files(dlq, "acme") for r in read_dead_letters(f)]
        assert record.step == "source" and "not valid gzip" in record.error
        assert record.event["aws.s3.bucket.name"] == bucket.bucket
        assert record.event["aws.s3.object.key"] == "AWSLogs/123456789012/CloudTrail/broken.json.gz"
        assert daemon.metric("vigil_component_pulled_messages_total", component_id="trail",
                             result="failed") == 1
        assert daemon.metric("vigil_dead_letter_events_total", tenant="acme") == 1
        assert daemon.readyz()[1]["sources"]["trail"]["redrive_policy"] is True
        assert daemon.stop() == 0
        # The same rows in the lake on S3, read back with DuckDB from the uploaded files.
        keys = [o["Key"] for o in bucket.s3.list_objects_v2(Bucket=lake_bucket)["Contents"]]
        assert all(k.startswith("lake/aws.cloudtrail/tenant=acme/date=") for k in keys)
        for key in keys:
            (tmp_path / "s3" / key).parent.mkdir(parents=True, exist_ok=True)
            bucket.s3.download_file(lake_bucket, key, str(tmp_path / "s3" / key))
        glob = f"{tmp_path}/s3/lake/**/*.parquet"
        assert duckdb.sql(f"SELECT count(*), count(DISTINCT \"aws.cloudtrail.eventID\") FROM "
                          f"read_parquet('{glob}', hive_partitioning=true)").fetchall() \
            == [(51, 51)]
    finally:
        daemon.kill()


def test_killed_between_download_and_append_reads_the_object_again(
        tmp_path: Path, moto_server: MotoServer) -> None:
    """The fault-injection hook (VIGIL_FAULT_HOLD_BEFORE_APPEND) holds the source after the
    object was downloaded and decoded, before its first journal append; SIGKILL there. The
    journal holds none of its events and the message is only in flight; after a restart the
    message reappears (visibility timeout 2 s), the object is read again, every event reaches
    the lake once, and the message is deleted after that append."""
    bucket = LogBucket(moto_server)
    conf = cloud_conf(tmp_path, source_settings(bucket, moto_server,
                                                visibility_timeout_seconds=2))
    data = tmp_path / "data"
    hold = tmp_path / "held-object"
    records = [cloudtrail_record(i) for i in range(200)]
    daemon = VigilProcess(conf, data, env={**aws_env(), FAULT_HOLD_ENV: str(hold)})
    daemon.env = {**aws_env(), FAULT_HOLD_ENV: str(hold)}
    daemon.start()
    try:
        bucket.put(cloudtrail_key(5), cloudtrail_file(records))
        wait_for(hold.exists, 30, message="the object downloaded and held before the append")
        assert hold.read_text() == f"s3://{bucket.bucket}/{cloudtrail_key(5)}"
        assert daemon.metric("vigil_journal_appended_events_total", partition="acme") == 0
        assert bucket.counts() == (0, 1)  # received, in flight, not deleted
        daemon.kill()
    finally:
        daemon.kill()
    restarted = VigilProcess(conf, data, env=aws_env())
    restarted.env = aws_env()
    restarted.start()
    try:
        appended_when_deleted = wait_for(
            lambda: bucket.empty() and 1 + restarted.metric(
                "vigil_journal_appended_events_total", partition="acme"),
            30, message="the message deleted after the restart")
        assert appended_when_deleted - 1 == 200
        wait_for(lambda: len(lake_rows(data)) == 200, 30, message="200 rows in the lake")
        rows = lake_rows(data, "SELECT \"aws.cloudtrail.eventID\" AS id FROM lake")
        assert sorted(r["id"] for r in rows) == sorted(r["eventID"] for r in records)
        assert restarted.stop() == 0
    finally:
        restarted.kill()


ROOT_LOGIN = "AWS root account console login"
NO_MFA = "AWS console login without MFA"


def console_login(n: int, identity: dict[str, Any], mfa: str) -> dict[str, Any]:
    """A ConsoleLogin record in the shape of AWS's "console sign-in events" page."""
    return cloudtrail_record(
        n, eventSource="signin.amazonaws.com", eventName="ConsoleLogin",
        eventType="AwsConsoleSignIn", userIdentity=identity, sourceIPAddress="81.2.69.160",
        requestParameters=None, responseElements={"ConsoleLogin": "Success"},
        additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home",
                             "MobileVersion": "No", "MFAUsed": mfa})


def test_builtin_rules_fire_on_cloudtrail_from_s3(tmp_path: Path,
                                                  moto_server: MotoServer) -> None:
    """The built-in CloudTrail rules (rules/library/aws_cloudtrail.yml) on sign-in records
    that came through S3/SQS: a root login without MFA raises the root-login alert and the
    no-MFA alert, an IAM user without MFA another no-MFA alert, a login with MFA none; the
    alerts are in the alert store and in the lake's `alerts` dataset."""
    from soc.alerts.db import Database
    from soc.alerts.model import SYSTEM, AlertFilter
    from soc.alerts.store import AlertStore

    bucket = LogBucket(moto_server)
    conf = cloud_conf(tmp_path, source_settings(bucket, moto_server))
    settings = yaml.safe_load((conf / "10-test.yaml").read_text())
    # Every rule of a dataset the tenant sends is active: the test is about the rules firing
    # on what S3 delivered, not about field-coverage activation.
    settings["vigil"]["detection"] = {"activation": {"mode": "all"}}
    write_conf(conf, settings)
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data, env=aws_env())
    daemon.env = aws_env()
    daemon.start()
    root = {"type": "Root", "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"}
    anaya = {"type": "IAMUser", "principalId": "AIDAEXAMPLE1", "accountId": "123456789012",
             "arn": "arn:aws:iam::123456789012:user/Anaya", "userName": "Anaya"}
    mateo = {"type": "IAMUser", "principalId": "AIDAEXAMPLE2", "accountId": "123456789012",
             "arn": "arn:aws:iam::123456789012:user/Mateo", "userName": "Mateo"}
    try:
        bucket.put(cloudtrail_key(20), cloudtrail_file([
            cloudtrail_record(1), console_login(2, root, "No"), console_login(3, anaya, "No"),
            console_login(4, mateo, "Yes")]))
        wait_for(lambda: len(lake_rows(
            data, "SELECT 1 FROM lake WHERE \"vigil.dataset\" = 'alerts'")) == 3, 30,
            message="three alerts in the lake")
        assert bucket.empty()
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    store = AlertStore(Database(data / "alerts.db"))
    rows, total = store.search(SYSTEM, AlertFilter(tenant="acme"))
    assert total == 3
    found = sorted((r["rule"]["name"], r["severity"]) for r in rows)
    assert found == [(NO_MFA, "medium"), (NO_MFA, "medium"), (ROOT_LOGIN, "high")]
    lake_alerts = lake_rows(data, "SELECT * FROM lake WHERE \"vigil.dataset\" = 'alerts'")
    assert sorted(a["rule.name"] for a in lake_alerts) == [NO_MFA, NO_MFA, ROOT_LOGIN]
    assert {a["tenant"] for a in lake_alerts} == {"acme"}
