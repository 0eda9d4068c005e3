"""Configuration models shared by every component: the strict base, global settings, tenants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

TENANT_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
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


Address = Annotated[str, AfterValidator(_check_address)]
TenantId = Annotated[str, AfterValidator(_check_tenant)]


def split_address(address: str) -> tuple[str, int]:
    """('127.0.0.1', 5514) from '127.0.0.1:5514'; brackets around IPv6 hosts are removed."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class StrictModel(BaseModel):
    """Every config model forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentConfig(StrictModel):
    """A source, sink or step: picked by `type:` through a registry."""

    type: str


class ControlConfig(StrictModel):
    address: Address = Field("127.0.0.1:9580",
                             description="HTTP listener for /metrics, health and the API")


class LimitsConfig(StrictModel):
    queue_max_events: int = Field(
        200_000, gt=0, description="events queued between sources and pipelines before backpressure"
    )
    batch_max_events: int = Field(5_000, gt=0, description="most events a worker takes at once")
    shutdown_timeout_seconds: float = Field(
        25.0, gt=0, description="how long SIGTERM may spend draining before giving up"
    )


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class GlobalConfig(StrictModel):
    """The `vigil:` section."""

    data_dir: Path | None = Field(
        None, description="state directory (lake, journal, dead letter); --data-dir overrides"
    )
    control: ControlConfig = ControlConfig()
    limits: LimitsConfig = LimitsConfig()
    logging: LoggingConfig = LoggingConfig()


class TenantConfig(StrictModel):
    """One client of the provider. The id (the map key) is a strict slug."""

    name: str = Field(description="display name")
    contract_id: str | None = None


class SourceConfig(ComponentConfig):
    """Fields every source has."""

    tenant: TenantId | None = Field(
        None, description="tenant that every event of this source belongs to")
    dataset: str = Field("syslog", description="dataset events have until a pipeline assigns one")


class SinkConfig(ComponentConfig):
    """Fields every sink has."""
