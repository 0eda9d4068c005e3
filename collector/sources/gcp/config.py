"""Configuration of the Google Cloud Pub/Sub source."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from collector.sources.pull import BackoffConfig
from core.config import ConfigIssue, SourceConfig, ValidationContext

SUBSCRIPTION_RE = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/"
                             r"[A-Za-z][A-Za-z0-9._~+%-]{2,254}")


class PubSubSourceConfig(SourceConfig):
    """`type: pubsub`: a Pub/Sub subscription pulled with flow control (typically fed by a
    Cloud Logging sink: one LogEntry per message); messages are acknowledged once their events
    are journaled, nacked when the source stops."""

    type: Literal["pubsub"] = "pubsub"
    subscription: str = Field(description="projects/<project>/subscriptions/<subscription>")
    credentials_file: Path | None = Field(
        None, description="service account key file (JSON); default: Application Default "
        "Credentials (GOOGLE_APPLICATION_CREDENTIALS, the metadata server); relative to the "
        "conf.d directory. PUBSUB_EMULATOR_HOST in the environment selects an emulator")
    endpoint: str | None = Field(None, description="API endpoint HOST:PORT instead of "
                                 "pubsub.googleapis.com:443 (regional or private endpoints)")
    dataset: str = Field("gcp.pubsub", description="dataset events have until a pipeline assigns "
                         "one (audit log entries get gcp.audit from its pipeline)")
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: a JSON object's keys (a LogEntry's logName, protoPayload, "
        "...) as they are, anything else as `message`; json: non-objects are kept marked; "
        "text: the data as `message`")
    max_messages: int = Field(1000, ge=1, description="flow control: messages held at most "
                              "(received, not yet acknowledged)")
    max_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="flow control: bytes held "
                           "at most")
    max_lease_seconds: int = Field(
        3600, ge=10, description="how long a held message's ack deadline keeps being extended "
        "(while the journal is full, for instance)")
    batch_events: int = Field(1000, ge=1, description="messages journaled together")
    batch_wait_seconds: float = Field(0.05, ge=0, le=5, description="how long to wait for more "
                                      "messages to journal together")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig,
                                   description="resubscribing after the stream failed")

    @field_validator("subscription")
    @classmethod
    def _check_subscription(cls, value: str) -> str:
        if not SUBSCRIPTION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a subscription path like "
                             "projects/my-project/subscriptions/audit-logs")
        return value

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        if self.credentials_file is not None:
            path = context.resolve(self.credentials_file)
            if not path.is_file():
                return [(("credentials_file",), f"credentials file not found: {path}")]
        return []
