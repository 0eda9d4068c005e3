"""Google's Pub/Sub emulator (the Java server shipped with the Cloud SDK component
`pubsub-emulator`) on a free loopback port, and topic/subscription helpers through the real
client library. Tests skip when the emulator or Java is absent."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import stop_process, wait_for

EMULATOR_DIRS = [Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator"),
                 Path("/usr/share/google-cloud-sdk/platform/pubsub-emulator")]
PROJECT = "vigil-test"


def emulator_binary() -> Path | None:
    for directory in EMULATOR_DIRS:
        binary = directory / "bin" / "cloud-pubsub-emulator"
        if binary.exists():
            return binary
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PubSubEmulator:
    def __init__(self, tmp: Path) -> None:
        binary = emulator_binary()
        if binary is None or shutil.which("java") is None:
            pytest.skip("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator) or Java is "
                        "not installed")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = tmp / "pubsub-emulator.log"
        with open(self.log, "wb") as output:
            self.proc = subprocess.Popen(
                [str(binary), "--host=127.0.0.1", f"--port={self.port}", f"--dir={tmp}"],
                stdout=output, stderr=subprocess.STDOUT)
        wait_for(lambda: "Server started" in self.log.read_text(errors="replace")
                 or self.proc.poll() is not None, 60, 0.1, "the Pub/Sub emulator")
        if self.proc.poll() is not None:
            raise AssertionError("Pub/Sub emulator exited:\n" + self.log.read_text())

    def stop(self) -> None:
        stop_process(self.proc, 15)


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    emulator = PubSubEmulator(tmp_path_factory.mktemp("pubsub"))
    yield emulator
    emulator.stop()


@pytest.fixture
def pubsub(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    """The emulator, selected for clients made in this process."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    return pubsub_emulator


class Topic:
    """A fresh topic with one subscription (ack deadline `ack_deadline` seconds)."""

    def __init__(self, emulator: PubSubEmulator, ack_deadline: int = 10) -> None:
        from google.cloud import pubsub_v1

        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        try:
            self.publisher = pubsub_v1.PublisherClient()
            self.subscriber = pubsub_v1.SubscriberClient()
        finally:
            if previous is None:
                del os.environ["PUBSUB_EMULATOR_HOST"]
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = previous
        name = f"t{uuid.uuid4().hex[:12]}"
        self.topic = f"projects/{PROJECT}/topics/{name}"
        self.subscription = f"projects/{PROJECT}/subscriptions/{name}"
        self.publisher.create_topic(name=self.topic)
        self.subscriber.create_subscription(name=self.subscription, topic=self.topic,
                                            ack_deadline_seconds=ack_deadline)

    def publish(self, *payloads: bytes, **attributes: str) -> list[str]:
        futures = [self.publisher.publish(self.topic, p, **attributes) for p in payloads]
        return [f.result(30) for f in futures]

    def pull(self, max_messages: int = 100) -> list[Any]:
        """What a second consumer gets now (synchronous pull; acked so it stays out)."""
        reply = self.subscriber.pull(subscription=self.subscription, max_messages=max_messages,
                                     timeout=5)
        received = list(reply.received_messages)
        if received:
            self.subscriber.acknowledge(subscription=self.subscription,
                                        ack_ids=[m.ack_id for m in received])
        return received


def audit_entry(n: int, method: str = "v1.compute.instances.insert", code: int = 0) -> dict:
    """A Cloud Audit Logs LogEntry as a log sink publishes it (Google's documented shape)."""
    return {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {"code": code} if code else {},
            "authenticationInfo": {"principalEmail": f"user{n}@example.com"},
            "requestMetadata": {"callerIp": "216.160.83.56",
                                "callerSuppliedUserAgent": "google-cloud-sdk gcloud/290.0.1"},
            "serviceName": "compute.googleapis.com", "methodName": method,
            "resourceName": f"projects/example/zones/us-central1-a/instances/vm-{n}"},
        "insertId": f"insert-{n}",
        "resource": {"type": "gce_instance",
                     "labels": {"project_id": "example", "zone": "us-central1-a"}},
        "timestamp": f"2024-05-14T09:30:{n % 60:02d}.123456Z",
        "severity": "NOTICE",
        "logName": "projects/example/logs/cloudaudit.googleapis.com%2Factivity",
        "receiveTimestamp": "2024-05-14T09:30:01.5Z",
    }
