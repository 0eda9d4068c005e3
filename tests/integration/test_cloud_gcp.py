"""Pub/Sub into the real daemon: Cloud Audit Logs entries published to a topic reach the lake
as `gcp.audit` events of the source's tenant through the shipped GCP audit pipeline, and are
acknowledged (nothing is left for another consumer).

Real: the daemon subprocess (journal, pipelines, lake), the google-cloud-pubsub client library
on both sides, gRPC on loopback. Faked: Google Cloud itself: Google's Pub/Sub emulator (the
Cloud SDK's Java server) stands in for the service; it needs no credentials.
"""

from __future__ import annotations

import json
from pathlib import Path

from cloud.pubsub_rig import PubSubEmulator, Topic, audit_entry, pubsub_emulator
from support.daemon import VigilProcess, lake_rows, shipped_pipeline_conf, wait_for

__all__ = ["pubsub_emulator"]


def test_audit_log_entries_from_pubsub_to_the_lake(tmp_path: Path,
                                                   pubsub_emulator: PubSubEmulator) -> None:
    topic = Topic(pubsub_emulator)
    conf = shipped_pipeline_conf(tmp_path / "conf.d", "38-gcp-audit.yaml", "audit", {
        "type": "pubsub", "subscription": topic.subscription})
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data, env={"PUBSUB_EMULATOR_HOST": pubsub_emulator.host})
    daemon.start()
    try:
        entries = [audit_entry(i) for i in range(30)]
        entries.append(audit_entry(30, method="storage.objects.get", code=7))
        topic.publish(*(json.dumps(e).encode() for e in entries))
        wait_for(lambda: len(lake_rows(data)) == 31, 30, message="31 rows in the lake")
        rows = lake_rows(data, "SELECT * FROM lake ORDER BY \"event.id\"")
        assert {(r["tenant"], r["vigil.dataset"]) for r in rows} == {("acme", "gcp.audit")}
        denied = [r for r in rows if r["event.action"] == "storage.objects.get"]
        assert [(r["event.outcome"], r["user.email"]) for r in denied] == [
            ("failure", "user30@example.com")]
        assert rows[0]["cloud.project.id"] == "example"
        assert rows[0]["vigil.origin"].startswith(f"pubsub://{topic.subscription}/")
        wait_for(lambda: daemon.metric("vigil_component_pulled_messages_total",
                                       component_id="audit", result="acknowledged") == 31,
                 10, message="31 acknowledged")
        assert daemon.stop() == 0
        assert topic.pull() == []
    finally:
        daemon.kill()
