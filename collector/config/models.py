"""Configuration models shared by every component: the strict base, global settings (`vigil:`),
tenant ids and routes, and the fields every source and sink has. The `tenants:` section's
models are in `collector.config.tenants`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.events import RESERVED_DATASETS

TENANT_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# Dataset names are lake directory names too.
DATASET_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
COMPONENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_tenant_id(value: str) -> bool:
    """Tenant ids become path components: only strict slugs pass."""
    return bool(TENANT_ID_RE.fullmatch(value))


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def _check_tenant(value: str) -> str:
    if not is_tenant_id(value):
        raise ValueError(f"tenant id {value!r} is not a slug matching [a-z0-9][a-z0-9_-]{{0,62}}")
    return value


def _check_dataset(value: str) -> str:
    if not DATASET_RE.fullmatch(value):
        raise ValueError(f"dataset {value!r} must match {DATASET_RE.pattern}")
    return value


Address = Annotated[str, AfterValidator(_check_address)]
DatasetName = Annotated[str, AfterValidator(_check_dataset)]
TenantId = Annotated[str, AfterValidator(_check_tenant)]


def split_address(address: str) -> tuple[str, int]:
    """('127.0.0.1', 5514) from '127.0.0.1:5514'; brackets around IPv6 hosts are removed."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class ValidationContext:
    """What validation may look at beyond the YAML: relative paths in the configuration resolve
    against the conf.d directory."""

    conf_dir: Path

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.conf_dir / path

    @classmethod
    def of(cls, info: ValidationInfo) -> ValidationContext | None:
        """The context given to `model_validate(..., context=...)`, if any."""
        return info.context if isinstance(info.context, ValidationContext) else None


ConfigIssue = tuple[tuple[Any, ...], str]


class StrictModel(BaseModel):
    """Every config model forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        """Errors that need more than one field or the file system (an unknown grok pattern, a
        missing database), each as (key path inside this model, message). The loader calls it
        after the model validated and reports each error at its file:line:col."""
        return []


class ComponentConfig(StrictModel):
    """A source, sink or step: picked by `type:` through a registry."""

    type: str


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (e.g. 10.0.0.0/8, 2001:db8::/32 "
                             "or a single address)") from None
        raise ValueError(f"{value!r} has host bits set (did you mean {str(loose)!r}?)") from None
    return value


Cidr = Annotated[str, AfterValidator(_check_cidr)]


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


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


_DURATION_RE = re.compile(r"(\d+)([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SEVERITIES = ("informational", "low", "medium", "high", "critical")


def parse_duration(value: Any) -> timedelta:
    """'15m', '4h', '1d', '1h30m' (s, m, h, d, w) -> timedelta; a timedelta passes through."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip()
    parts = _DURATION_RE.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like 15m, 4h, 1d or 1h30m")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ActivationConfig(StrictModel):
    """When a rule switches on for a tenant by itself."""

    mode: Literal["auto", "all"] = Field(
        "auto", description="auto: a rule is active for a tenant once one of the tenant's "
        "datasets serves its logsource and every field it needs is populated; all: every rule "
        "of a dataset the tenant sends is active")
    min_events: int = Field(1, ge=1, description="events of a dataset in the window before its "
                                                 "rules can activate")
    min_field_ratio: float = Field(
        0.0, ge=0, le=1, description="share of a dataset's events a needed field must be "
        "populated in (0: at least once)")
    window: Duration = Field(timedelta(days=7), description="how far back field coverage "
                                                            "counts (kept in daily buckets)")


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
    control: ControlConfig = ControlConfig()
    limits: LimitsConfig = LimitsConfig()
    queue: QueueConfig = QueueConfig()
    detection: DetectionConfig = DetectionConfig()
    logging: LoggingConfig = LoggingConfig()

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        return [(("control", *loc), message)
                for loc, message in self.control.semantic_errors(context)]


TenantReference = tuple[tuple[str | int, ...], str]


class RouteConfig(StrictModel):
    """A tenant route of a source. Routes are tried in order; the first whose conditions all
    hold names the event's tenant; an event no route claims goes to `_quarantine`."""

    tenant: TenantId = Field(description="tenant of the events this route matches")
    source_cidrs: list[Cidr] = Field(
        default_factory=list, description="sender addresses (CIDR blocks or single addresses)")
    field: str | None = Field(
        None, description="event field tested after header parsing, e.g. host.hostname")
    patterns: list[str] = Field(
        default_factory=list, description="glob patterns for `field`, case-insensitive")

    @model_validator(mode="after")
    def _has_condition(self) -> RouteConfig:
        if (self.field is None) != (not self.patterns):
            raise ValueError("`field` and `patterns` go together")
        if not self.source_cidrs and self.field is None:
            raise ValueError("a route needs `source_cidrs`, or `field` with `patterns`")
        return self


class SourceConfig(ComponentConfig):
    """Fields every source has."""

    tenant: TenantId | None = Field(
        None, description="tenant that every event of this source belongs to")
    routes: list[RouteConfig] = Field(
        default_factory=list,
        description="instead of `tenant`: routes tried in order, unmatched -> _quarantine")
    dataset: DatasetName = Field("syslog",
                                 description="dataset events have until a pipeline assigns one")

    @field_validator("dataset")
    @classmethod
    def _not_reserved(cls, dataset: str) -> str:
        if dataset in RESERVED_DATASETS:
            raise ValueError(f"dataset {dataset!r} is written by the daemon itself; choose "
                             "another name")
        return dataset

    @field_validator("routes")
    @classmethod
    def _tenant_or_routes(cls, routes: list[RouteConfig], info: ValidationInfo
                          ) -> list[RouteConfig]:
        if routes and info.data.get("tenant") is not None:
            raise ValueError("give either `tenant` (one tenant for every event) or `routes`, "
                             "not both")
        return routes

    def tenant_references(self) -> list[TenantReference]:
        """Every tenant this source can route to, with its key path (for cross checks)."""
        refs: list[TenantReference] = [(("tenant",), self.tenant)] if self.tenant else []
        refs += [(("routes", i, "tenant"), r.tenant) for i, r in enumerate(self.routes)]
        return refs


class SinkConfig(ComponentConfig):
    """Fields every sink has."""
