"""Configuration of the HTTP ingest source and its tokens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from collector.sources.http.bodies import DEFAULT_MAX_MEMBERS
from collector.sources.tls import TlsConfig, tls_file_issues
from core.config import (
    Address,
    ConfigIssue,
    SourceConfig,
    StrictModel,
    TenantId,
    TenantReference,
    ValidationContext,
)
from core.nesting import DEFAULT_MAX_DEPTH, MAX_MAX_DEPTH
from core.reloading import read_token_file

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _check_sha256(value: str) -> str:
    value = value.strip().lower()
    if not _SHA256_HEX.fullmatch(value):
        raise ValueError("expected the 64 hex digits of sha256(token), e.g. from "
                         "`printf %s \"$TOKEN\" | sha256sum`")
    return value


Sha256Hex = Annotated[str, AfterValidator(_check_sha256)]


class HttpTokenConfig(StrictModel):
    """One client token. Stored as its SHA-256 (or read from a file), never logged."""

    tenant: TenantId | None = Field(
        None, description="tenant of every event sent with this token; without it the "
        "source's `tenant`/`routes` decide")
    sha256: Sha256Hex | None = Field(None, description="hex SHA-256 of the token")
    token_file: Path | None = Field(
        None, description="file holding the token itself (e.g. a systemd credential), relative "
        "to the conf.d directory; re-read when it changes (a rotated token takes over at once; "
        "an emptied or removed file refuses the token until it is fixed)")

    @model_validator(mode="after")
    def _one_secret(self) -> HttpTokenConfig:
        if (self.sha256 is None) == (self.token_file is None):
            raise ValueError("give exactly one of `sha256` and `token_file`")
        return self


class HttpSourceConfig(SourceConfig):
    type: Literal["http"] = "http"
    address: Address = Field(description="HOST:PORT to listen on")
    dataset: str = Field("json", description="dataset events have unless `?dataset=` names one")
    tokens: dict[str, HttpTokenConfig] = Field(
        min_length=1, description="accepted tokens by name (`Authorization: Bearer <token>` or "
        "`Splunk <token>`)")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="larger bodies (before or after gunzip) get 413")
    max_connections: int = Field(1024, gt=0, description="further connections are refused")
    max_connections_per_peer: int = Field(
        256, gt=0, description="connections one sender address may hold; further ones are "
        "refused (counted, logged once a minute), so one client cannot take every slot")
    header_timeout_seconds: float = Field(
        30.0, gt=0, description="a request's head must arrive within this long of the "
        "connection's start or the previous answer (also the keep-alive idle timeout)")
    body_timeout_seconds: float = Field(
        60.0, gt=0, description="a request's body must arrive within this long of its head; "
        "else 408 and the connection is closed (counted as `read_timeout`)")
    max_gzip_members: int = Field(
        DEFAULT_MAX_MEMBERS, gt=0, description="a gzip body of more members gets 400 "
        "(inflating is linear; this bounds the work of a body of empty members)")
    max_depth: int = Field(
        DEFAULT_MAX_DEPTH, ge=1, le=MAX_MAX_DEPTH, description="JSON nested deeper is refused "
        "(named in the 400 reply, kept as text in the dead letter, counted as `too_deep`)")
    retry_after_seconds: int = Field(1, ge=1, description="Retry-After of a 503 (queue full)")
    tls: TlsConfig | None = Field(None, description="serve HTTPS")

    def tenant_references(self) -> list[TenantReference]:
        refs = super().tenant_references()
        refs += [(("tokens", name, "tenant"), token.tenant)
                 for name, token in self.tokens.items() if token.tenant is not None]
        return refs

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues = tls_file_issues(self.tls, context)
        for name, token in self.tokens.items():
            if token.token_file is not None:
                try:
                    read_token_file(context.resolve(token.token_file))
                except ValueError as exc:
                    issues.append((("tokens", name, "token_file"), str(exc)))
        return issues
