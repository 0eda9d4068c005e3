"""Cluster names: tenant ids become subject tokens only as strict slugs; a collector needs
the journal (validated with the exact message); offsets from stream sequences are unique."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.daemon import write_conf

from collector.cluster.stream import (
    RECORD_SPAN,
    ClusterError,
    events_subject,
    lease_key,
    tenant_token,
)
from collector.config import load_config
from collector.config.models import ClusterConfig
from core.errors import ConfigErrors


@pytest.mark.parametrize("tenant", ["a.b", "*", ">", "acme.>", "A", "", "x y", "-x"])
def test_a_tenant_id_that_is_not_a_slug_never_becomes_a_subject(tenant: str) -> None:
    with pytest.raises(ClusterError, match="cannot be a subject token"):
        events_subject(ClusterConfig(), tenant, 0)
    with pytest.raises(ClusterError):
        lease_key(tenant, 0)


def test_subjects_of_slugs_and_the_quarantine() -> None:
    config = ClusterConfig(subject_prefix="v", shards=2)
    assert events_subject(config, "acme-1", 1) == "v.events.acme-1.1"
    assert tenant_token("_quarantine") == "_quarantine"


def test_event_offsets_of_consecutive_records_never_overlap() -> None:
    # A record holds at most RECORD_SPAN events: record s ends before record s + 1 starts.
    assert 7 * RECORD_SPAN + RECORD_SPAN - 1 < 8 * RECORD_SPAN


def test_a_collector_without_the_journal_is_refused(tmp_path: Path) -> None:
    write_conf(tmp_path, {"vigil": {"role": "collector", "queue": {"type": "memory"},
                                    "allow_empty": True}})
    with pytest.raises(ConfigErrors) as caught:
        load_config(tmp_path)
    assert any("vigil.queue.type: a collector publishes its journal's records: "
               "`role: collector` needs `queue.type: journal`" in line
               for line in caught.value.report(tmp_path))


def test_the_default_role_is_the_single_host(tmp_path: Path) -> None:
    write_conf(tmp_path, {"vigil": {"allow_empty": True}})
    assert load_config(tmp_path).settings.role == "all"
