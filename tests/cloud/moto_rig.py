"""A real moto server (`moto_server`, from the dev extra) as a subprocess on an OS-chosen
loopback port, and helpers to build buckets whose notifications reach an SQS queue directly,
through SNS, or through EventBridge, the way AWS wires them."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import stop_process, wait_for

# Fake credentials for the moto server; the real credential chain reads them from the env.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}
REGION = "us-east-1"


class MotoServer:
    """`moto_server -H 127.0.0.1 -p 0`, its URL read from its banner."""

    def __init__(self) -> None:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if binary is None:
            pytest.skip("moto_server is not installed (pip install -e '.[dev]')")
        self.proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.url = ""
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.url or self.proc.poll() is not None, 30, message="moto_server")
        if not self.url:
            raise AssertionError("moto_server did not start:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if match and not self.url:
                self.url = match.group(1)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    return AWS_ENV


class LogBucket:
    """A bucket whose ObjectCreated notifications reach a queue (with a redrive policy to a
    dead-letter queue when `max_receive_count` is given)."""

    def __init__(self, moto: MotoServer, via: str = "sqs", max_receive_count: int | None = None,
                 visibility_timeout: int = 30) -> None:
        self.moto = moto
        name = f"logs-{uuid.uuid4().hex[:12]}"
        self.bucket = name
        self.s3 = moto.client("s3")
        self.sqs = moto.client("sqs")
        self.s3.create_bucket(Bucket=name)
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        self.dlq_url: str | None = None
        if max_receive_count is not None:
            self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = self._arn(self.dlq_url)
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
        self.queue_url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        queue_arn = self._arn(self.queue_url)
        if via == "sqs":
            self.s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
        elif via == "sns":
            sns = moto.client("sns")
            topic = sns.create_topic(Name=name)["TopicArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
            self.s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"TopicConfigurations": [
                    {"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]})
        elif via == "eventbridge":
            events = moto.client("events")
            events.put_rule(Name=name, EventPattern=json.dumps(
                {"source": ["aws.s3"], "detail-type": ["Object Created"],
                 "detail": {"bucket": {"name": [name]}}}))
            events.put_targets(Rule=name, Targets=[{"Id": "vigil", "Arn": queue_arn}])
            self.s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
        else:
            raise ValueError(via)

    def _arn(self, url: str) -> str:
        reply = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(reply["Attributes"]["QueueArn"])

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue (or of `url`)."""
        reply = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(reply["ApproximateNumberOfMessages"]),
                int(reply["ApproximateNumberOfMessagesNotVisible"]))

    def empty(self) -> bool:
        return self.counts() == (0, 0)


def cloudtrail_record(n: int, **overrides: Any) -> dict[str, Any]:
    """A CloudTrail record in the documented shape (the user guide's StopInstances call)."""
    record = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                         "arn": "arn:aws:iam::123456789012:user/Alice",
                         "accountId": "123456789012", "userName": "Alice"},
        "eventTime": f"2024-05-14T09:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "eventSource": "ec2.amazonaws.com", "eventName": "StopInstances",
        "awsRegion": "us-east-2", "sourceIPAddress": "205.251.233.176",
        "userAgent": "ec2-api-tools 1.6.12.2",
        "requestParameters": {"instancesSet": {"items": [{"instanceId": f"i-{n:08x}"}]}},
        "responseElements": None, "eventID": str(uuid.UUID(int=n)),
        "eventType": "AwsApiCall", "managementEvent": True,
        "recipientAccountId": "123456789012", "eventCategory": "Management"}
    record.update(overrides)
    return record


def cloudtrail_file(records: list[dict[str, Any]]) -> bytes:
    """A CloudTrail log file as CloudTrail writes it: one gzipped JSON line."""
    return gzip.compress(json.dumps({"Records": records}).encode())


def cloudtrail_key(n: int, account: str = "123456789012") -> str:
    return (f"AWSLogs/{account}/CloudTrail/us-east-2/2024/05/14/"
            f"{account}_CloudTrail_us-east-2_20240514T0905Z_{n:016x}.json.gz")
