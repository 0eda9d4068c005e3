"""The `notifiers:` section (email over SMTP, webhooks) and its checks against the tenants.

Secrets (the SMTP password, a webhook's HMAC key) come from a file or the YAML; they are read
when a channel is built and never logged or echoed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from collector.config.tenants import Email
from core.config import ComponentConfig, ConfigIssue, Duration, ValidationContext
from core.registry import did_you_mean

if TYPE_CHECKING:
    from collector.config.loader import VigilConfig


class RetryPolicy(ComponentConfig):
    """Shared by channels: attempts after the first, and exponential backoff between them."""

    retries: int = Field(3, ge=0, le=20, description="attempts after the first before the "
                         "message goes to <data_dir>/notify-dlq/")
    backoff: Duration = Field(
        "2s", validate_default=True,
        description="wait before the first retry; doubles for each further retry")
    max_backoff: Duration = Field(
        "5m", validate_default=True, description="longest wait between tries")
    timeout_seconds: float = Field(10.0, gt=0, description="one attempt's time limit")


def _secret_file_errors(path: Path | None, key: str, context: ValidationContext
                        ) -> list[ConfigIssue]:
    if path is None:
        return []
    resolved = context.resolve(path)
    if not resolved.is_file():
        return [((key,), f"file {str(resolved)!r} does not exist")]
    return []


def read_secret(path: Path | None, inline: str | None, conf_dir: Path | None) -> str | None:
    """A secret from its file (first line, stripped) or the inline value."""
    if path is not None:
        resolved = path if path.is_absolute() or conf_dir is None else conf_dir / path
        return resolved.read_text(encoding="utf-8").splitlines()[0].strip()
    return inline


class EmailNotifierConfig(RetryPolicy):
    """Mail over SMTP, or into the outbox directory; also sends TOTP enrollment mails to new
    users."""

    type: Literal["email"] = "email"
    transport: Literal["smtp", "outbox"] = Field(
        "smtp", description="smtp: deliver through `host`; outbox: write each message as an "
        ".eml file under <data_dir>/outbox/ (read them with `vigil outbox list|show`), for a "
        "host without a mail server")
    host: str | None = Field(None, description="SMTP server (required with transport smtp)")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (submission, 587), tls (SMTPS, 465) or none")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server with "
                                 "(default: the system's)")
    username: str | None = None
    password: str | None = Field(None, description="prefer `password_file`")
    password_file: Path | None = Field(None, description="file holding the SMTP password")
    sender: Email = Field(description="From: address")
    soc_recipients: list[Email] = Field(
        default_factory=list, description="the SOC's addresses: new detections of managed_soc "
        "tenants, internal escalations, SLA breaches")

    @model_validator(mode="after")
    def _one_password(self) -> EmailNotifierConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give `password` or `password_file`, not both")
        if self.transport == "smtp" and not self.host:
            raise ValueError("`host` is required with transport smtp (or set `transport: "
                             "outbox` to keep messages under <data_dir>/outbox/)")
        return self

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        errors = _secret_file_errors(self.password_file, "password_file", context)
        errors += _secret_file_errors(self.ca_file, "ca_file", context)
        return errors


class WebhookNotifierConfig(RetryPolicy):
    """JSON POST signed with `X-Vigil-Signature: sha256=<HMAC-SHA256 of the body>`."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(description="http(s) URL")
    secret: str | None = Field(None, description="HMAC key (prefer `secret_file`)")
    secret_file: Path | None = Field(None, description="file holding the HMAC key")
    audience: Literal["soc", "client"] = Field(
        "client", description="soc: gets what the SOC gets for every tenant; client: gets what "
        "a tenant's team gets, for the tenants that list it in `notifications.webhooks`")

    @model_validator(mode="after")
    def _check(self) -> WebhookNotifierConfig:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("`url` must start with http:// or https://")
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of `secret` and `secret_file` (receivers verify "
                             "the signature with it)")
        return self

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        return _secret_file_errors(self.secret_file, "secret_file", context)


def check_tenant_notifications(config: VigilConfig, sink: Any) -> None:
    """Tenants name webhooks that exist and are webhooks; email recipients need an email
    notifier."""
    notifiers: dict[str, Any] = config.section("notifiers")
    has_email = any(isinstance(n, EmailNotifierConfig) for n in notifiers.values())
    for tenant_id, tenant in config.tenants.items():
        for index, webhook in enumerate(tenant.notifications.webhooks):
            found = notifiers.get(webhook)
            if not isinstance(found, WebhookNotifierConfig):
                what = "is not a webhook" if found is not None else "is not declared"
                sink.add_for("tenants", tenant_id, ("notifications", "webhooks", index),
                             f"notifier {webhook!r} {what} under `notifiers:`"
                             f"{did_you_mean(webhook, notifiers) if found is None else ''}",
                             refers_to=("notifiers", webhook) if found is None else None)
        reports = tenant.reports
        for kind in ("weekly", "closed_incident"):
            report = getattr(reports, kind)
            if report.enabled and report.recipients and not has_email:
                sink.add_for("tenants", tenant_id, ("reports", kind, "recipients"),
                             "report recipients are set but no notifier of type email is "
                             "declared under `notifiers:`")
        recipients = tenant.notifications.email
        if not has_email and any(recipients.for_severity(s) for s in type(recipients).model_fields):
            sink.add_for("tenants", tenant_id, ("notifications", "email"),
                         "email recipients are set but no notifier of type email is declared "
                         "under `notifiers:`")
