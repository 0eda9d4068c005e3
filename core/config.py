"""Configuration base models and field types: the strict base every config model derives from,
the fields every source and sink has (tenant routes, dataset), and the field types that validate
addresses, CIDR blocks, tenant ids, dataset names and durations."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

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

from core.events import RESERVED_DATASETS

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
