"""Configuration of the `s3_sqs` source. The AWS connection it shares with the S3 lake sink
(region, endpoint, credentials, role) is `core.aws.config.AwsConnectionConfig`."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from collector.sources.pull import BackoffConfig
from core.aws.config import AwsConnectionConfig
from core.config import SourceConfig

_QUEUE_URL_RE = re.compile(r"https?://[^/\s]+/[^/\s]+/[^/\s]+/?")
# https://sqs.<region>.amazonaws.com/<account>/<name>
_QUEUE_REGION_RE = re.compile(r"https?://sqs[.-]([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com")


class S3SqsSourceConfig(SourceConfig):
    """`type: s3_sqs`: S3 objects announced on an SQS queue (CloudTrail, VPC flow logs, any
    bucket of logs), read and split into events; the message is deleted once every event of
    its objects is journaled."""

    type: Literal["s3_sqs"] = "s3_sqs"
    queue_url: str = Field(description="URL of the SQS queue that receives the bucket's event "
                           "notifications (directly, through SNS, or from EventBridge)")
    aws: AwsConnectionConfig = Field(default_factory=AwsConnectionConfig,
                                     description="region, endpoint, credentials, role")
    dataset: str = Field("aws.s3", description="dataset events have until a pipeline assigns "
                         "one (CloudTrail records get aws.cloudtrail from its pipeline)")
    format: Literal["auto", "json", "ndjson", "lines"] = Field(
        "auto", description="auto: a JSON document or JSON lines (a `Records` array such as "
        "CloudTrail's is split into its records), else text lines; json: one JSON document; "
        "ndjson: one JSON value per line; lines: one text event per line")
    compression: Literal["auto", "gzip", "none"] = Field(
        "auto", description="auto: gzip when the object starts with the gzip magic bytes")
    exclude_keys: list[str] = Field(
        default_factory=lambda: ["*/CloudTrail-Digest/*"],
        description="glob patterns of object keys to skip (their message is deleted, counted "
        "as discarded); CloudTrail digest files by default")
    max_messages: int = Field(10, ge=1, le=10, description="messages asked for per receive")
    concurrency: int = Field(4, ge=1, le=64, description="messages processed at once")
    wait_time_seconds: int = Field(
        10, ge=0, le=20, description="long-poll time of a receive; shutdown waits for an open "
        "receive at most this long")
    visibility_timeout_seconds: int = Field(
        120, ge=2, le=43200, description="how long a received message stays hidden; renewed "
        "every half of it while its objects are still being read")
    max_receive_count: int = Field(
        3, ge=1, le=1000, description="attempts before an object that cannot be read or "
        "decoded is dead-lettered, when the queue has no redrive policy (with one, its "
        "maxReceiveCount is used)")
    batch_events: int = Field(5000, ge=1, description="events appended to the journal at a time "
                              "while an object is read")
    max_document_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="largest decompressed JSON document read whole "
        "(a CloudTrail file); larger ones fail (JSON lines and text are read in a stream)")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig,
                                   description="retries of failed SQS calls")

    @field_validator("queue_url")
    @classmethod
    def _check_queue_url(cls, value: str) -> str:
        if not _QUEUE_URL_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an SQS queue URL like "
                             "https://sqs.eu-west-1.amazonaws.com/123456789012/cloudtrail")
        return value

    def region(self) -> str | None:
        """The configured region, else the one the queue URL names."""
        if self.aws.region:
            return self.aws.region
        match = _QUEUE_REGION_RE.match(self.queue_url)
        return match.group(1) if match else None
