"""Tenant configuration (the `tenants:` section): a client's contract, contacts, SLAs per
severity, notification recipients and rule switches (issue 6: alerts, SLAs, users).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from collector.config.models import RetentionConfig
from core.config import SEVERITIES, Duration, StrictModel, parse_duration


def _check_email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError(f"{value!r} is not an email address")
    return value


Email = Annotated[str, AfterValidator(_check_email)]


class ContactConfig(StrictModel):
    name: str = Field(description="person or team")
    email: Email | None = None
    phone: str | None = None


class SeveritySla(StrictModel):
    ack: Duration = Field(description="time to acknowledge, e.g. 15m")
    resolve: Duration = Field(description="time to resolve, e.g. 4h")

    @model_validator(mode="after")
    def _ack_first(self) -> SeveritySla:
        if self.resolve < self.ack:
            raise ValueError("`resolve` must not be shorter than `ack`")
        return self


def _sla(ack: str, resolve: str) -> SeveritySla:
    return SeveritySla(ack=parse_duration(ack), resolve=parse_duration(resolve))


class SlaConfig(StrictModel):
    """Time to acknowledge and to resolve per alert severity."""

    critical: SeveritySla = _sla("15m", "4h")
    high: SeveritySla = _sla("60m", "24h")
    medium: SeveritySla = _sla("4h", "3d")
    low: SeveritySla = _sla("24h", "7d")
    informational: SeveritySla = _sla("3d", "30d")

    def for_severity(self, severity: str) -> SeveritySla:
        """The SLA of `severity`; an unknown severity gets the medium SLA."""
        sla = getattr(self, severity, None) if severity in SEVERITIES else None
        return sla if isinstance(sla, SeveritySla) else self.medium


class EmailRecipients(StrictModel):
    """The client's addresses per alert severity."""

    critical: list[Email] = Field(default_factory=list)
    high: list[Email] = Field(default_factory=list)
    medium: list[Email] = Field(default_factory=list)
    low: list[Email] = Field(default_factory=list)
    informational: list[Email] = Field(default_factory=list)

    def for_severity(self, severity: str) -> list[str]:
        found = getattr(self, severity, None) if severity in SEVERITIES else None
        return list(found) if isinstance(found, list) else []


class TenantNotifications(StrictModel):
    email: EmailRecipients = Field(
        default_factory=EmailRecipients, description="client recipients per severity")
    webhooks: list[str] = Field(
        default_factory=list, description="ids of `notifiers` of type webhook for this client")


class TenantRulesConfig(StrictModel):
    """Explicit rule switches of one tenant; they override automatic activation."""

    enable: list[str] = Field(default_factory=list,
                              description="rule ids active whatever the tenant's data shows")
    disable: list[str] = Field(default_factory=list, description="rule ids never active")
    placeholders: dict[str, list[str]] = Field(
        default_factory=dict, description="the tenant's values of Sigma `|expand` placeholders; "
        "a name set here replaces vigil.detection.placeholders' list for this tenant")


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]


class WeeklyReportConfig(StrictModel):
    """The weekly posture report (HTML mail with the PDF attached) of the week before."""

    enabled: bool = Field(False, description="mail the report of the previous week (Monday "
                          "00:00 to Monday 00:00 UTC) once a week; managed_soc clients are "
                          "told to review it")
    weekday: Weekday = Field("monday", description="the day it is sent (UTC)")
    hour: int = Field(7, ge=0, le=23, description="the hour it is sent (UTC)")
    recipients: list[Email] = Field(
        default_factory=list, description="who gets it (default: the tenant's contact and "
        "escalation contacts)")


class ClosedIncidentReportConfig(StrictModel):
    """The closed-incident report mailed when an alert is resolved as a true positive."""

    enabled: bool = Field(False, description="mail a report (HTML and PDF) for every alert "
                          "resolved as true positive")
    recipients: list[Email] = Field(
        default_factory=list, description="who gets it (default: the tenant's contact and "
        "escalation contacts)")


class TenantReportsConfig(StrictModel):
    """Reports mailed to the client; every report can also be downloaded from the console."""

    weekly: WeeklyReportConfig = Field(default_factory=WeeklyReportConfig)
    closed_incident: ClosedIncidentReportConfig = Field(
        default_factory=ClosedIncidentReportConfig)


class TenantConfig(StrictModel):
    """One client of the provider. The id (the map key) is a strict slug."""

    name: str = Field(description="display name")
    contract_id: str | None = None
    contact: ContactConfig | None = Field(None, description="primary contact")
    tier: Literal["managed_soc", "siem_only"] = Field(
        "managed_soc", description="managed_soc: the SOC triages and the client gets "
        "escalations; siem_only: the client's own team gets every new detection")
    sla: SlaConfig = Field(default_factory=SlaConfig, description="SLAs per severity")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="this tenant's retention (its contract); "
        "unset values follow `vigil.retention`")
    notifications: TenantNotifications = Field(default_factory=TenantNotifications)
    escalation_contacts: list[ContactConfig] = Field(
        default_factory=list, description="who escalations to the client go to")
    rules: TenantRulesConfig = Field(default_factory=TenantRulesConfig,
                                     description="rule switches for this tenant")
    reports: TenantReportsConfig = Field(default_factory=TenantReportsConfig,
                                         description="scheduled reports mailed to the client")

    def report_recipients(self, configured: list[str]) -> list[str]:
        """`configured`, else the contact's and escalation contacts' addresses."""
        if configured:
            return list(configured)
        contacts = [self.contact, *self.escalation_contacts] if self.contact else \
            list(self.escalation_contacts)
        return sorted({c.email for c in contacts if c is not None and c.email})
