"""The daemon's configuration models: global settings (`vigil:`: control listener, limits,
queue, detection, logging) and rule sources. The base models and field types every component
shares are in `core.config`; the `tenants:` section's models are in `collector.config.tenants`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import (
    Address,
    Cidr,
    ConfigIssue,
    Duration,
    StrictModel,
    TenantId,
    ValidationContext,
)
from rules.coverage import ActivationConfig


class TlsConfig(StrictModel):
    """TLS on a listener (a source, the control listener). Relative paths are relative to the
    conf.d directory."""

    cert_file: Path | None = Field(None, description="server certificate chain (PEM)")
    key_file: Path | None = Field(None, description="private key of `cert_file` (PEM)")
    self_signed: bool = Field(
        False, description="trials only: generate <data_dir>/tls/<listener>.crt/.key instead of "
        "`cert_file`/`key_file`")
    ca_file: Path | None = Field(None, description="CA bundle that client certificates must "
                                 "chain to (mTLS)")
    client_auth: Literal["none", "optional", "required"] = Field(
        "none", description="ask for a client certificate; `required` rejects clients "
        "without one")
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    handshake_timeout_seconds: float = Field(
        10.0, gt=0, description="a handshake not done by then fails (and is counted)")

    @model_validator(mode="after")
    def _key_material(self) -> TlsConfig:
        files = self.cert_file is not None, self.key_file is not None
        if self.self_signed and any(files):
            raise ValueError("`self_signed` generates the pair: remove `cert_file`/`key_file` or "
                             "`self_signed`")
        if not self.self_signed and not all(files):
            raise ValueError("give `cert_file` and `key_file` (or `self_signed: true` for a "
                             "trial)")
        if self.client_auth != "none" and self.ca_file is None:
            raise ValueError(f"`client_auth: {self.client_auth}` needs `ca_file`")
        return self


class ControlConfig(StrictModel):
    """The control listener: the API and /healthz, and the operator endpoints /metrics and
    /readyz (tenant ids, counts, journal paths), which are never open on an exposed address."""

    address: Address = Field(
        "127.0.0.1:9580", description="HTTP listener for the API and /healthz; also /metrics "
        "and /readyz without a token when it is a loopback address and `operator_address` is "
        "not set")
    local_socket: bool = Field(
        True, description="also serve the API on <data_dir>/run/control.sock (directory 0700): "
        "root and the daemon's user reach it without a login, as a platform admin audited as "
        "`local:<user>` (`vigil alerts` on the host uses it)")
    operator_address: Address | None = Field(
        None, description="a second, plain-HTTP listener for /metrics, /readyz and /healthz "
        "without a token (keep it on loopback or a management network); once set, `address` "
        "serves /metrics and /readyz only with the operator token")
    operator_token_file: Path | None = Field(
        None, description="file holding a bearer token that opens /metrics and /readyz on "
        "`address` (compared in constant time; re-read when it changes), relative to the "
        "conf.d directory")
    trusted_proxies: list[Cidr] = Field(
        default_factory=list, description="reverse proxies (CIDR blocks) whose "
        "X-Forwarded-For names the client for rate limits, lockout and audit; from any other "
        "peer the header is ignored")
    tls: TlsConfig | None = Field(
        None, description="serve the API over HTTPS (`self_signed` writes "
        "<data_dir>/tls/control.crt); the operator listener stays plain HTTP")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        from collector.sources.tls import tls_file_issues  # the file checks need ssl

        issues = tls_file_issues(self.tls, context)
        if self.operator_token_file is not None:
            path = context.resolve(self.operator_token_file)
            try:
                if not path.read_text(encoding="utf-8").strip():
                    issues.append((("operator_token_file",), f"token file {path} is empty"))
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                issues.append((("operator_token_file",),
                               f"cannot read token file {path}: {reason}"))
        return issues


class LimitsConfig(StrictModel):
    queue_max_events: int = Field(
        200_000, gt=0, description="events queued between sources and pipelines before backpressure"
    )
    batch_max_events: int = Field(5_000, gt=0, description="most events a worker takes at once")
    shutdown_timeout_seconds: float = Field(
        25.0, gt=0, description="how long SIGTERM may spend draining before giving up"
    )


MIB = 1024 * 1024


class FsyncInterval(StrictModel):
    interval_ms: int = Field(gt=0, le=60_000,
                             description="fsync every N ms; durable waits wait for the next one")


FsyncPolicy = Literal["always", "never"] | FsyncInterval


class QueueConfig(StrictModel):
    """Where events wait between sources and pipelines."""

    type: Literal["memory", "journal"] = Field(
        "journal", description="`journal` (durable, on disk) or `memory` (lost on restart)")
    path: Path | None = Field(None, description="journal directory; default <data_dir>/journal")
    fsync: FsyncPolicy = Field(
        "always",
        description="`always` (group commit: a durable wait returns after its fsync), "
                    "`{interval_ms: N}` (a background fsync every N ms), or `never` (the OS "
                    "decides; a power loss can lose acknowledged events: unsafe)")
    segment_bytes: int = Field(16 * MIB, ge=64 * 1024,
                               description="a segment file rolls over past this size")
    max_events: int | None = Field(
        None, gt=0, description="unacknowledged events in total before backpressure; "
                                "default vigil.limits.queue_max_events")
    max_bytes: int = Field(4096 * MIB, gt=0,
                           description="journal bytes on disk in total before backpressure")
    partition_max_events: int | None = Field(
        None, gt=0, description="unacknowledged events of one tenant before that tenant gets "
                                "backpressure; default half of max_events (a flooding tenant "
                                "leaves the other half to the rest)")
    partition_max_bytes: int | None = Field(
        None, gt=0, description="journal bytes of one tenant before backpressure; "
                                "default half of max_bytes")
    resume_ratio: float = Field(0.8, gt=0, lt=1,
                                description="backpressure ends below this share of a bound")
    checkpoint_interval_ms: int = Field(
        200, gt=0, description="how often acknowledged positions are persisted (a crash replays "
                               "at most this much already-committed data)")
    probe_interval_ms: int = Field(
        1000, gt=0, description="while writes fail, how often to test whether the disk recovered")

    def fsync_mode(self) -> str:
        return self.fsync if isinstance(self.fsync, str) else "interval"

    def fsync_interval(self) -> float:
        """Seconds between background fsyncs (interval mode)."""
        return self.fsync.interval_ms / 1000 if isinstance(self.fsync, FsyncInterval) else 0.0


class DashboardQueryConfig(StrictModel):
    """The `vigil.dashboard_queries` settings: bounds of every panel's DuckDB query."""

    timeout_seconds: float = Field(10.0, gt=0, le=600, description="a panel query running "
                                   "longer is interrupted and the panel shows the error")
    memory_limit: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
                              description="DuckDB memory limit per panel query (nothing "
                              "spills to disk)")
    threads: int = Field(2, ge=1, le=64, description="DuckDB threads per panel query")
    concurrent: int = Field(2, ge=1, le=64, description="panel queries running at once in "
                            "the daemon; more wait their turn")


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class CorrelationConfig(StrictModel):
    lateness: Duration = Field(timedelta(seconds=60), description="how late (event time) an "
                               "event may arrive and still count toward a window")
    max_keys: int = Field(10_000, gt=0, description="group keys kept per correlation rule and "
                                                    "tenant; the oldest are evicted (counted)")
    max_events: int = Field(10_000, gt=0, description="events kept per window")
    max_clock_skew: Duration = Field(
        timedelta(minutes=5), description="how far ahead of its receive time (or, in a replay, "
        "of the tenant's other senders) a sender's event time may run before the event is "
        "judged by its receive time and the sender is flagged (metric, `vigil coverage`, a "
        "data-source-health alert)")
    max_senders: int = Field(10_000, gt=0, description="senders (hosts, devices) whose event "
                             "time is tracked per tenant; the least recently seen are evicted")


class DetectionConfig(StrictModel):
    """The `vigil.detection` settings: Sigma rules over every tenant's events."""

    enabled: bool = True
    builtin_rules: bool = Field(True, description="load the rules shipped in rules/library")
    suppression: Duration = Field(
        timedelta(hours=1), description="repeats of an alert (same tenant, rule and group key) "
        "within this time fold into it and are counted as suppressed")
    max_alert_events: int = Field(20, gt=0, description="matched events kept on an alert")
    state_interval: Duration = Field(
        timedelta(seconds=5), description="how often detection state (correlation windows, "
        "suppression) is saved; a journal position is acknowledged only once it is saved")
    activation: ActivationConfig = ActivationConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    placeholders: dict[str, list[str]] = Field(
        default_factory=dict, description="values of Sigma `|expand` placeholders for every "
        "tenant (`known_cdcs: [dc1.example.com, 10.0.0.5]`); a rule using a placeholder with no "
        "value stays inactive, with that reason")


class RuleSourceConfig(StrictModel):
    """A directory (or file) of Sigma rules: the global library, or a tenant's own rules."""

    path: Path = Field(description="directory of Sigma YAML (searched recursively), relative to "
                                   "the conf.d directory")
    tenant: TenantId | None = Field(None, description="owner: the rules apply to this tenant "
                                                      "only; absent: every tenant")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        if not context.resolve(self.path).exists():
            return [(("path",), f"rule path not found: {context.resolve(self.path)}")]
        return []


class RetentionConfig(StrictModel):
    """How long data is kept, in whole days; unset: for ever (or the global value, for a
    tenant)."""

    lake: Duration | None = Field(None, description="delete lake date partitions older than "
                                  "this (e.g. 400d; at least 1d)")
    dead_letter: Duration | None = Field(
        None, description="delete dead-letter date partitions older than this (e.g. 30d)")

    @field_validator("lake", "dead_letter")
    @classmethod
    def _whole_days(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(days=1):
            raise ValueError("retention is counted in days: at least 1d")
        return value


class ClusterLimitsConfig(StrictModel):
    """Limits of the events stream, per tenant shard subject and in total."""

    tenant_max_messages: int = Field(
        1_000_000, gt=0, description="records (journal appends) kept per tenant shard subject "
        "(JetStream `max_msgs_per_subject`, discard new): a tenant past it gets publish errors, "
        "its records stay in the collectors' journals and the journal's bound holds its sources "
        "back; other tenants go on")
    max_bytes: int | None = Field(None, gt=0, description="bytes the events stream holds in "
                                  "total (discard new); default: what the server allows")
    max_age: Duration = Field(timedelta(days=7), description="records older than this are "
                              "removed from the stream whether processed or not")


class ClusterConfig(StrictModel):
    """The `vigil.cluster:` section: NATS JetStream between roles (`vigil.role` other than
    `all`)."""

    servers: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"],
        description="NATS server URLs (any of the cluster's servers)")
    node_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        description="this process's name in the cluster (collector deduplication ids, shard "
        "leases, `vigil cluster status`); default: host name and control port. A collector's "
        "must stay the same across restarts (its journal's records are deduplicated by it)")
    stream: str = Field("VIGIL", pattern=r"^[A-Za-z0-9_]{1,32}$",
                        description="the events stream (alerts go to `<stream>_ALERTS`)")
    subject_prefix: str = Field(
        "vigil", pattern=r"^[a-z0-9_]{1,32}$",
        description="events go to `<prefix>.events.<tenant>.<shard>`, alerts to "
        "`<prefix>.alerts.<tenant>`")
    shards: int = Field(1, ge=1, le=64, description="shards per tenant: subjects a tenant's "
                        "records are spread over by collector, each processed by one worker at a "
                        "time (correlation state is per shard: keep 1 unless a tenant outgrows a "
                        "worker)")
    replicas: int = Field(1, ge=1, le=5, description="JetStream replicas of the streams and "
                          "key-value buckets")
    publish_timeout_seconds: float = Field(5.0, gt=0, le=300, description="how long a "
                                           "collector waits for a publish acknowledgement")
    publish_batch_events: int = Field(5_000, gt=0, description="events a collector reads from "
                                      "its journal per publish round")
    sender_ack: Literal["jetstream", "journal"] = Field(
        "jetstream", description="when a collector acknowledges its senders (HTTP 200, a cloud "
        "pull's delete/ack/checkpoint): `jetstream`, once JetStream stored the events (while "
        "NATS is unreachable, or after `sender_ack_timeout_seconds`, once the local journal has "
        "them: they are published later, in order); `journal`, at the local journal's fsync "
        "(lower latency; until the drain the events rest on the collector's disk)")
    sender_ack_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="the longest a sender's acknowledgement waits for "
        "JetStream (a backlog being drained) before the local journal's copy answers for it")
    duplicate_window: Duration = Field(
        timedelta(minutes=2), description="JetStream deduplication window: a collector's "
        "retry (the same record after a timeout or a restart) within it is stored once")
    lease_seconds: float = Field(6.0, ge=1, le=300, description="a worker's shard lease: "
                                 "renewed every third of it; another worker takes the shard "
                                 "over once it lapses")
    max_ack_pending: int = Field(64, ge=1, description="records delivered to a shard's owner "
                                 "and not yet acknowledged (all sinks committed)")
    limits: ClusterLimitsConfig = ClusterLimitsConfig()


class GlobalConfig(StrictModel):
    """The `vigil:` section."""

    data_dir: Path | None = Field(
        None, description="state directory (lake, journal, dead letter); --data-dir overrides"
    )
    allow_empty: bool = Field(
        False, description="accept a configuration without sources or tenants (`vigil run` and "
        "`vigil validate` refuse one otherwise: a wrong -c or an unreadable conf.d looks just "
        "like it); for a host that only serves the API and console"
    )
    workers: int | None = Field(
        None, ge=1, le=256,
        description="processes that run pipelines, detection and sinks (default: the number "
        "of CPUs). With 2 or more and the journal, the main process keeps the listeners, "
        "tenant routing, journal appends and the control plane, and each worker process owns "
        "the journal partitions (tenants) assigned to it, reading their segment files; 1 (or "
        "the memory queue) runs everything in one process. Changes at restart only"
    )
    role: Literal["all", "collector", "worker", "control"] = Field(
        "all", description="what this process does: `all` (one host, no NATS), `collector` "
        "(sources, tenant routing, the journal, publishing its records to JetStream), `worker` "
        "(tenant shards from JetStream: pipelines, detection, sinks) or `control` (API, "
        "console, alert store fed by the workers' alerts); see docs/scale-out.md")
    cluster: ClusterConfig = ClusterConfig()
    control: ControlConfig = ControlConfig()
    limits: LimitsConfig = LimitsConfig()
    queue: QueueConfig = QueueConfig()
    detection: DetectionConfig = DetectionConfig()
    logging: LoggingConfig = LoggingConfig()
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="how long lake and dead-letter date "
        "partitions are kept (all tenants; `tenants.<id>.retention` overrides per tenant)")
    dashboard_queries: DashboardQueryConfig = DashboardQueryConfig()

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = [(("control", *loc), message)
                                     for loc, message in self.control.semantic_errors(context)]
        if self.role == "collector" and self.queue.type != "journal":
            issues.append((("queue", "type"), "a collector publishes its journal's records: "
                           "`role: collector` needs `queue.type: journal`"))
        return issues
