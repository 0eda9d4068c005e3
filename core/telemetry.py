"""Every Prometheus metric Vigil exposes, and the only module that touches prometheus_client.

Components report once per batch through a `ComponentTelemetry` handle; names follow Prometheus
conventions (`vigil_component_received_events_total{component_id,component_kind,component_type}`).
Label values are bounded: component ids and tenant ids come from the configuration.
"""

from __future__ import annotations

import platform
import re
import socket
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.metrics_core import Metric

import core
from core.config import TENANT_ID_RE
from core.durable import WriteEpisodes

__all__ = ["CONTENT_TYPE", "ComponentTelemetry", "Telemetry"]

_COMPONENT = ("component_id", "component_kind", "component_type")
# A tenant label value that is not a tenant id (never expected: tenants come from the journal
# partition); an arbitrary string must not become a label value.
INVALID_TENANT = "_invalid"
_TENANT_LABEL_RE = re.compile(f"{TENANT_ID_RE.pattern}|_quarantine|_unknown|")


def tenant_label(tenant: str) -> str:
    """`tenant` as a label value: a tenant id, `_quarantine`, `_unknown` or empty (decided per
    event); anything else is counted under `_invalid`."""
    if isinstance(tenant, str) and _TENANT_LABEL_RE.fullmatch(tenant):
        return tenant
    return INVALID_TENANT


class Telemetry:
    """Owns a registry per daemon so tests can run several daemons in one process."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = Info("vigil_build", "Vigil build information; `role` and `host` "
                               "say which process of a cluster serves these metrics",
                               registry=r)
        self.identify("all", socket.gethostname())
        self.received_events = Counter(
            "vigil_component_received_events", "Events a component received",
            [*_COMPONENT, "tenant"], registry=r)
        self.received_bytes = Counter(
            "vigil_component_received_bytes", "Bytes a component received (tenant empty when "
            "it is decided per event, after decoding)", [*_COMPONENT, "tenant"], registry=r)
        self.sent_events = Counter(
            "vigil_component_sent_events", "Events a component sent on", [*_COMPONENT, "tenant"],
            registry=r)
        self.errors = Counter(
            "vigil_component_errors", "Errors a component hit",
            [*_COMPONENT, "error_type", "stage"], registry=r)
        self.discarded = Counter(
            "vigil_component_discarded_events", "Events a component could not take",
            [*_COMPONENT, "reason"], registry=r)
        self.connections = Gauge(
            "vigil_component_open_connections", "Open client connections of a source",
            _COMPONENT, registry=r)
        self.closed_connections = Counter(
            "vigil_component_closed_connections", "Connections a source closed on its own "
            "(idle, idle_evicted to make room, drain_deadline at stop)",
            [*_COMPONENT, "reason"], registry=r)
        self.drain_cut_bytes = Counter(
            "vigil_component_drain_cut_bytes", "Bytes still unread in connections the drain "
            "deadline closed at stop or reload", _COMPONENT, registry=r)
        self.quarantined_events = Counter(
            "vigil_component_quarantined_events", "Events a source could route to no tenant "
            "(kept under tenant=_quarantine)", _COMPONENT, registry=r)
        self.http_requests = Counter(
            "vigil_component_http_requests", "HTTP requests a source answered, by status code",
            [*_COMPONENT, "code"], registry=r)
        # -- pulled cloud sources (S3/SQS, Pub/Sub, Event Hubs) ------------------------------
        self.pulled_messages = Counter(
            "vigil_component_pulled_messages", "Messages a pulling source took from its cloud "
            "service, by result: received, acknowledged (SQS delete, Pub/Sub ack, Event Hubs "
            "checkpoint), failed, released (handed back: visibility reset, nack)",
            [*_COMPONENT, "result"], registry=r)
        self.pull_retries = Counter(
            "vigil_component_pull_retries", "Calls to a cloud service retried after an error "
            "(with exponential backoff)", [*_COMPONENT, "operation"], registry=r)
        self.pull_lease_extensions = Counter(
            "vigil_component_pull_lease_extensions", "Visibility timeouts or ack deadlines "
            "extended while a message was still being processed", _COMPONENT, registry=r)
        self.pull_backlog = Gauge(
            "vigil_component_pull_backlog_messages", "Messages waiting in the cloud service, "
            "where its API says (SQS approximate count, Event Hubs sequence-number lag)",
            _COMPONENT, registry=r)
        self.queue_events = Gauge(
            "vigil_queue_events", "Events queued or in flight between sources and sinks",
            registry=r)
        self.queue_capacity = Gauge(
            "vigil_queue_capacity_events", "Queue bound above which sources get backpressure",
            registry=r)
        self.backpressure = Gauge(
            "vigil_queue_backpressure",
            "1 while sources are held back (the queue or a tenant partition over its bound)",
            registry=r)
        self.journal_appended_events = Counter(
            "vigil_journal_appended_events", "Events appended to the journal", ["partition"],
            registry=r)
        self.journal_appended_bytes = Counter(
            "vigil_journal_appended_bytes", "Record bytes appended to the journal", ["partition"],
            registry=r)
        self.journal_write_errors = Counter(
            "vigil_journal_write_errors", "Journal appends or fsyncs that failed",
            ["error_type"], registry=r)
        self.journal_damaged_records = Counter(
            "vigil_journal_damaged_records", "Corrupt or torn journal records skipped or cut",
            ["partition"], registry=r)
        self.journal_damaged_events = Counter(
            "vigil_journal_damaged_events", "Events lost in damaged journal ranges (from the "
            "offsets around them, or estimated from their length)", ["partition"], registry=r)
        self.journal_checkpoint_repairs = Counter(
            "vigil_journal_checkpoint_repairs", "Journal checkpoints found missing or wrong at "
            "open and replaced by what the segments hold", ["partition", "reason"], registry=r)
        self.storage_write_errors = Counter(
            "vigil_storage_write_errors", "Failed writes of state files, sink files and the "
            "alert store (disk full, I/O error), retried", ["writer", "error_type"], registry=r)
        self.storage_failing = Gauge(
            "vigil_storage_failing", "1 while a writer's writes fail and are being retried",
            ["writer"], registry=r)
        self.replayed_already_committed = Counter(
            "vigil_sink_replayed_committed_events", "Replayed events a sink already held in a "
            "committed file (recognised by the file names) and did not write again",
            ["sink", "partition"], registry=r)
        self.journal_damaged_bytes = Counter(
            "vigil_journal_damaged_bytes", "Journal bytes found damaged", ["partition"],
            registry=r)
        self.journal_fsync_seconds = Histogram(
            "vigil_journal_fsync_duration_seconds", "Time one journal fsync round took",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r)
        self.event_loop_lag = Histogram(
            "vigil_event_loop_lag_seconds", "How late the event loop ran a callback scheduled "
            "every 100 ms: CPU work on the loop delays every source by as much",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r)
        self.event_loop_lag_max = Gauge(
            "vigil_event_loop_lag_max_seconds", "The largest event loop lag of the last 10 s",
            registry=r)
        self.journal_pending_events = Gauge(
            "vigil_journal_pending_events", "Journal events not yet acknowledged", ["partition"],
            registry=r)
        self.journal_disk_bytes = Gauge(
            "vigil_journal_disk_bytes", "Journal segment bytes on disk", ["partition"],
            registry=r)
        self.journal_backpressure = Gauge(
            "vigil_journal_partition_backpressure", "1 while a partition is over its bound",
            ["partition"], registry=r)
        self.journal_failing = Gauge(
            "vigil_journal_failing", "1 while journal writes fail (disk full, I/O error)",
            registry=r)
        self.lake_files = Counter(
            "vigil_lake_files_written", "Parquet files written to the lake", ["dataset", "tenant"],
            registry=r)
        self.lake_rows = Counter(
            "vigil_lake_rows_written", "Rows written to the lake", ["dataset", "tenant"],
            registry=r)
        self.lake_bytes = Counter(
            "vigil_lake_bytes_written", "Parquet bytes written to the lake", ["dataset", "tenant"],
            registry=r)
        self.config_reloads = Counter(
            "vigil_config_reloads", "Configuration reloads by result", ["result"], registry=r)
        self.config_reload_errors = Counter(
            "vigil_config_reload_errors", "Errors found in rejected configuration reloads",
            registry=r)
        for result in ("success", "failure"):
            self.config_reloads.labels(result=result)
        self.detection_rules = Gauge(
            "vigil_detection_rules", "Single-event rules loaded", registry=r)
        self.detection_rule_errors = Gauge(
            "vigil_detection_rule_load_errors", "Rule files or rules that failed to load",
            registry=r)
        self.detection_rule_cache = Counter(
            "vigil_detection_rule_cache_files", "Rule files per load: taken from the compiled-"
            "rule cache (hit), compiled (miss), not cached (uncached: correlations, filters); "
            "cache files or entries refused as corrupt or foreign (invalid), failed writes "
            "(write_error)", ["result"], registry=r)
        for result in ("hit", "miss", "uncached", "invalid", "write_error"):
            self.detection_rule_cache.labels(result=result)
        self.detection_active_rules = Gauge(
            "vigil_detection_active_rules", "Rules active for a tenant", ["tenant"], registry=r)
        self.detection_matches = Counter(
            "vigil_detection_matches", "Rule matches (before deduplication)", ["tenant"],
            registry=r)
        self.detection_events = Counter(
            "vigil_detection_state_events", "Detection state events: late_dropped, "
            "evicted_keys, expired_keys, truncated_events, fired (correlations), suppressed, "
            "clock_clamped (an event time ahead of its receipt), evicted_senders",
            ["event"], registry=r)
        self.detection_skewed_senders = Gauge(
            "vigil_detection_skewed_senders", "Senders of a tenant whose clock runs ahead by more "
            "than correlation.max_clock_skew (they are listed by `vigil coverage`)", ["tenant"],
            registry=r)
        self.detection_correlation_keys = Gauge(
            "vigil_detection_correlation_keys", "Group keys held in correlation windows",
            registry=r)
        self.step_events = Counter(
            "vigil_pipeline_step_events", "Events a pipeline step took, passed on, failed on or "
            "dropped", ["pipeline", "step", "step_type", "result"], registry=r)
        self.step_results = Counter(
            "vigil_pipeline_step_results", "What a step did with the events it took, by result "
            "(geoip enriched/not_found/not_public/invalid, lookup matched/defaulted/missed, "
            "threat_intel matched, file reloads/reload_errors)",
            ["pipeline", "step", "step_type", "result"], registry=r)
        self.dead_letter_events = Counter(
            "vigil_dead_letter_events", "Events sent to the dead-letter area", ["tenant"],
            registry=r)
        self.dead_letter_replayed = Counter(
            "vigil_dead_letter_replayed_events", "Dead-lettered events put back into the queue",
            ["tenant"], registry=r)
        self.dead_letter_files = Counter(
            "vigil_dead_letter_files_written", "Dead-letter files committed", ["tenant"],
            registry=r)
        self.poison_events = Counter(
            "vigil_poison_events", "Events sent to the dead letter because processing raised "
            "on them (component: pipeline, detection, worker or a sink id; scope: event when "
            "the one event was pinned, batch when a batch that kept failing was quarantined)",
            ["component", "tenant", "scope"], registry=r)

        # -- alerts, SLAs, notifications, users and the API (issue 6) ----------------------
        self.alerts_written = Counter(
            "vigil_alerts_written", "Alerts the alert store inserted or updated (by detection)",
            ["tenant", "result"], registry=r)
        self.alerts_rejected = Counter(
            "vigil_alerts_rejected", "Alert records the alert store could not take (kept in "
            "the lake's alerts dataset)", ["tenant"], registry=r)
        self.alerts_open = Gauge(
            "vigil_alerts_open", "Open alerts", ["tenant", "severity", "status"], registry=r)
        self.alert_sla_breaches = Counter(
            "vigil_alerts_sla_breaches", "Alerts that missed an SLA deadline (ack or resolve)",
            ["tenant", "severity", "kind"], registry=r)
        sla_buckets = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400,
                       7 * 86400)
        self.alert_time_to_ack = Histogram(
            "vigil_alerts_time_to_acknowledge_seconds", "Time from an alert's creation to its "
            "acknowledgement", ["tenant", "severity"], buckets=sla_buckets, registry=r)
        self.alert_time_to_resolve = Histogram(
            "vigil_alerts_time_to_resolve_seconds", "Time from an alert's creation to its "
            "resolution", ["tenant", "severity"], buckets=sla_buckets, registry=r)
        self.alert_actions = Counter(
            "vigil_alerts_triage_actions", "Triage changes to alerts", ["tenant", "action"],
            registry=r)
        self.notify_messages = Counter(
            "vigil_notify_messages", "Notification delivery attempts by outcome (sent, retried, "
            "dead_lettered)", ["channel", "channel_type", "result"], registry=r)
        self.reports = Counter(
            "vigil_reports", "Reports generated by kind (weekly, closed_incident) and outcome "
            "(queued: mailed through the outbox; unsent: no recipient or mail notifier, or "
            "switched off; failed)", ["tenant", "kind", "result"], registry=r)
        self.provenance_rejected_values = Counter(
            "vigil_pipeline_provenance_rejected_events", "Events on which a step (from the "
            "input's keys: json, kv, cef, leef, nest, ...) tried to create or change a provenance "
            "key (vigil.tenant, vigil.source, vigil.dataset, vigil.received_at, vigil.offset); "
            "the value was dropped and the daemon's stamp kept",
            ["pipeline", "step", "step_type"], registry=r)
        self.cluster_sender_acks = Counter(
            "vigil_cluster_sender_acks", "A collector's acknowledgements to its senders (HTTP "
            "200, cloud pull acks) by what stood behind them: `jetstream` (the stream stored "
            "the events), `journal_unreachable` (NATS unreachable: the local journal), "
            "`journal_timeout` (JetStream slower than `sender_ack_timeout_seconds`)", ["after"],
            registry=r)
        self.auth_logins = Counter(
            "vigil_auth_logins", "Login attempts by result", ["result"], registry=r)
        self.api_requests = Counter(
            "vigil_api_requests", "API requests by route and status code",
            ["route", "method", "code"], registry=r)
        # Failure episodes of every writer (state files, sink files, the alert store).
        self.storage = WriteEpisodes(self)
        # The samples worker processes report (collector.processes), merged into /metrics.
        self.remote = RemoteSamples()

    def identify(self, role: str, host: str) -> None:
        """Label this process's metrics source with its `vigil.role` and host (the cluster's
        node name), one series: `vigil_build_info{role, host, ...} 1`, which a query joins
        onto any other series of the same scrape target."""
        self.build_info.info({"version": core.__version__,
                              "python": platform.python_version(),
                              "role": role, "host": host})

    def pipeline_events(self, pipeline_id: str, tenant: str, received: int, sent: int) -> None:
        """Events that entered a pipeline and left it towards the sinks, for one batch."""
        labels = (pipeline_id, "pipeline", "pipeline", tenant_label(tenant))
        self.received_events.labels(*labels).inc(received)
        self.sent_events.labels(*labels).inc(sent)

    def pipeline_step_events(self, pipeline_id: str, step_id: str, step_type: str,
                             received: int, sent: int, failed: int, dropped: int) -> None:
        """One batch's counts of one step."""
        for result, n in (("received", received), ("sent", sent), ("failed", failed),
                          ("dropped", dropped)):
            if n:
                self.step_events.labels(pipeline_id, step_id, step_type, result).inc(n)

    def provenance_rejected(self, pipeline_id: str, step_id: str, step_type: str,
                            n: int) -> None:
        """Events of one batch whose provenance a step tried to change."""
        self.provenance_rejected_values.labels(pipeline_id, step_id, step_type).inc(n)

    def dead_letters(self, tenant: str, n: int) -> None:
        self.dead_letter_events.labels(tenant_label(tenant)).inc(n)

    def poison(self, component: str, tenant: str, n: int, scope: str = "event") -> None:
        """Events dead-lettered because `component` raised on them (`scope`: event, batch)."""
        self.poison_events.labels(component, tenant, scope).inc(n)

    def component(self, component_id: str, kind: str, type_name: str) -> ComponentTelemetry:
        """A handle that reports for one component."""
        return ComponentTelemetry(self, (component_id, kind, type_name))

    def collect(self) -> list[Metric]:
        """This process's metrics, with the worker processes' samples merged in."""
        own = list(self.registry.collect())
        return self.remote.merged(own) if self.remote else own

    def render(self) -> bytes:
        """The text exposition format for /metrics (every process's samples)."""
        return generate_latest(self)  # type: ignore[arg-type]  # anything with collect()

    def snapshot(self) -> list[list[Any]]:
        """This process's samples as plain data, for the main process (`RemoteSamples`)."""
        return [[family.name, family.type,
                 [[s.name, s.labels, s.value] for s in family.samples
                  if not s.name.endswith("_created")]]
                for family in self.registry.collect() if family.type != "info"]

    def sample(self, name: str, **labels: str) -> float:
        """The current value of one sample (0.0 when absent); for tests and health detail."""
        return sum(s.value for metric in self.collect() for s in metric.samples
                   if s.name == name and s.labels == labels)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples of one metric whose labels include `labels` (e.g. events
        received by all sources: component_kind="source")."""
        return sum(s.value for metric in self.collect() for s in metric.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# Gauges every process reports the same value of (merged by max); other gauges are shares of
# one total (one tenant's rules, one source's connections: summed), like counters.
_GAUGES_BY_MAX = frozenset({"vigil_detection_rules", "vigil_detection_rule_load_errors",
                            "vigil_storage_failing"})
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


class RemoteSamples:
    """The latest samples of each worker process, plus the counters of workers that exited
    (a restarted worker's counters start again at zero; the sum never goes backwards)."""

    def __init__(self) -> None:
        self.live: dict[str, dict[str, dict[SampleKey, float]]] = {}
        self.retired: dict[str, dict[SampleKey, float]] = {}
        self.types: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.live or self.retired)

    def update(self, source: str, snapshot: list[list[Any]]) -> None:
        families: dict[str, dict[SampleKey, float]] = {}
        for name, kind, samples in snapshot:
            self.types[name] = kind
            families[name] = {(s, tuple(sorted(labels.items()))): float(v)
                              for s, labels, v in samples}
        self.live[source] = families

    def retire(self, source: str) -> None:
        """A worker exited: keep its counters and histograms, forget its gauges."""
        for name, samples in self.live.pop(source, {}).items():
            if self.types.get(name) == "gauge":
                continue
            kept = self.retired.setdefault(name, {})
            for key, value in samples.items():
                kept[key] = kept.get(key, 0.0) + value

    def merged(self, own: list[Metric]) -> list[Metric]:
        out = []
        for family in own:
            values: dict[SampleKey, float] = {
                (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
            by_max = family.type == "gauge" and family.name in _GAUGES_BY_MAX
            for source in (self.retired, *self.live.values()):
                for key, value in source.get(family.name, {}).items():
                    before = values.get(key)
                    if before is None:
                        values[key] = value
                    else:
                        values[key] = max(before, value) if by_max else before + value
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for (sample, labels), value in values.items():
                merged.add_sample(sample, dict(labels), value)
            out.append(merged)
        return out


class ComponentTelemetry:
    """Bound label children for one component; cheap enough to call once per batch."""

    def __init__(self, telemetry: Telemetry, labels: tuple[str, str, str]) -> None:
        self._t = telemetry
        self.labels = labels
        self._received: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._received_bytes: dict[str, Any] = {}
        self._connections = telemetry.connections.labels(*labels)

    def received(self, events: int, tenant: str) -> None:
        child = self._received.get(tenant)
        if child is None:
            child = self._received[tenant] = self._t.received_events.labels(
                *self.labels, tenant_label(tenant))
        child.inc(events)

    def received_bytes(self, n: int, tenant: str = "") -> None:
        child = self._received_bytes.get(tenant)
        if child is None:
            child = self._received_bytes[tenant] = self._t.received_bytes.labels(
                *self.labels, tenant_label(tenant))
        child.inc(n)

    def sent(self, events: int, tenant: str) -> None:
        child = self._sent.get(tenant)
        if child is None:
            child = self._sent[tenant] = self._t.sent_events.labels(*self.labels,
                                                                    tenant_label(tenant))
        child.inc(events)

    def error(self, error_type: str, stage: str, n: int = 1) -> None:
        self._t.errors.labels(*self.labels, error_type, stage).inc(n)

    def discarded(self, reason: str, n: int = 1) -> None:
        self._t.discarded.labels(*self.labels, reason).inc(n)

    def quarantined(self, n: int) -> None:
        self._t.quarantined_events.labels(*self.labels).inc(n)

    def http_response(self, code: int) -> None:
        self._t.http_requests.labels(*self.labels, str(code)).inc()

    def pulled(self, result: str, n: int = 1) -> None:
        """Messages of a pulling source: received, acknowledged, failed or released."""
        self._t.pulled_messages.labels(*self.labels, result).inc(n)

    def pull_retry(self, operation: str) -> None:
        self._t.pull_retries.labels(*self.labels, operation).inc()

    def lease_extended(self, n: int = 1) -> None:
        self._t.pull_lease_extensions.labels(*self.labels).inc(n)

    def backlog(self, messages: float) -> None:
        self._t.pull_backlog.labels(*self.labels).set(messages)

    def connection_opened(self) -> None:
        self._connections.inc()

    def connection_closed(self) -> None:
        self._connections.dec()

    def connection_ended(self, reason: str, n: int = 1) -> None:
        """Connections the source closed itself: `idle`, `idle_evicted`, `drain_deadline`."""
        self._t.closed_connections.labels(*self.labels, reason).inc(n)

    def drain_cut(self, unread_bytes: int) -> None:
        self._t.drain_cut_bytes.labels(*self.labels).inc(unread_bytes)
