"""Request and response models of /api/v1. The OpenAPI document is generated from these, and
every response is validated against its model before it is sent, so the two cannot drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from soc.alerts.sla import SlaFigures
from soc.auth.model import User as UserOut

Severity = Literal["informational", "low", "medium", "high", "critical"]
Status = Literal["new", "acknowledged", "escalated", "resolved"]
Resolution = Literal["false_positive", "true_positive", "benign", "duplicate"]
Level = Literal["L1", "L2", "L3"]
Role = Literal["platform_admin", "soc_l1", "soc_l2", "soc_l3", "client_admin",
               "client_operator", "client_viewer"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Text = Annotated[str, Field(min_length=1, max_length=10_000)]
ShortText = Annotated[str, Field(min_length=1, max_length=500)]
Login = Annotated[str, Field(min_length=2, max_length=64)]


def _utc(value: datetime) -> datetime:
    """Naive times are UTC; times that do not fit after conversion are refused, not crashed."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range") from None


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors, auth ------------------------------------------------------------------------------

class Error(Response):
    error: str = Field(description="what went wrong, for people")
    detail: list[dict[str, Any]] | None = Field(None, description="per-field problems")


class LoginRequest(Request):
    login: Login
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    code: Annotated[str, Field(max_length=16)] | None = Field(
        None, description="the 6-digit TOTP code (required; a login without it fails)")


class PrincipalOut(Response):
    login: str
    role: str
    tenants: list[str] | None = Field(description="tenants in scope; null: every tenant")
    token_kind: str
    expires_at: str
    token_id: str | None = Field(None, description="the token's id (to list and revoke it)")


class LoginResponse(Response):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    expires_at: str
    principal: PrincipalOut


class ActivateRequest(Request):
    login: Login
    token: Annotated[str, Field(min_length=1, max_length=200)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    code: Annotated[str, Field(min_length=1, max_length=16)]


class ActivateResponse(Response):
    login: str
    status: str


class TokenRequest(Request):
    name: ShortText
    ttl: Annotated[str, Field(pattern=r"^(\d{1,6}[smhdw]){1,5}$")] | None = Field(
        None, description="lifetime such as 30d (capped by the access policy)")
    tenants: list[Slug] | None = Field(None, max_length=1000,
                                       description="narrow the token to these tenants")


class OkResponse(Response):
    ok: bool


class TokenOut(Response):
    id: str
    kind: str = Field(description="session or api")
    name: str | None
    tenants: list[str]
    created_at: str
    created_from: str | None = Field(description="client address it was made from")
    expires_at: str
    parent_id: str | None = Field(description="the token it was made with; it dies with it")
    current: bool = Field(description="the token of this request")


class TokenList(Response):
    items: list[TokenOut]


class RevokedResponse(Response):
    revoked: int = Field(description="tokens revoked (with the tokens made from them)")


# -- alerts ------------------------------------------------------------------------------------

class RuleOut(Response):
    id: str
    name: str
    description: str | None
    type: str | None
    references: list[Any]
    falsepositives: list[Any]
    tags: list[Any]
    runbook: str | None


class ThreatOut(Response):
    tactics: list[Any]
    techniques: list[Any]


class EscalationOut(Response):
    level: str | None
    reason: str | None


class SlaOut(Response):
    ack_due: str
    resolve_due: str
    ack_breached_at: str | None
    resolve_breached_at: str | None


class NoteOut(Response):
    author: str
    created_at: str
    body: str


class AlertSummary(Response):
    id: str
    tenant: str
    severity: str
    status: str
    assignee: str | None
    rule: RuleOut
    threat: ThreatOut
    escalation: EscalationOut
    resolution: str | None
    dataset: str | None
    group_key: str
    first_seen: str
    last_seen: str
    count: int
    suppressed: int
    created_at: str
    updated_at: str
    acknowledged_at: str | None
    resolved_at: str | None
    sla: SlaOut


class ClientRequestOut(Response):
    id: int
    kind: str = Field(description="validation, action or decision")
    question: str
    asked_by: str
    asked_at: str
    answer: str | None
    answered_by: str | None
    answered_at: str | None


class AlertDetail(AlertSummary):
    events: list[Any] = Field(description="matched events: key fields and a lake reference")
    notes: list[NoteOut]
    client_requests: list[ClientRequestOut] = Field(
        default_factory=list, description="questions to the client and their answers")


class AlertPage(Response):
    items: list[AlertSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class AlertQuery(Request):
    tenant: Slug | None = None
    status: list[Status] = Field(default_factory=list, max_length=4)
    severity: list[Severity] = Field(default_factory=list, max_length=5)
    rule_id: Annotated[str, Field(max_length=200)] | None = None
    assignee: Annotated[str, Field(max_length=64)] | None = None
    since: UtcTime | None = Field(None, description="created at or after")
    until: UtcTime | None = Field(None, description="created before")
    breached: bool | None = Field(None, description="only alerts that missed (or met) an SLA")
    sla_state: Literal["breached", "due_soon"] | None = Field(
        None, description="open alerts past a deadline, or due within the next hour")
    tactic: Annotated[str, Field(max_length=100)] | None = Field(
        None, description="an ATT&CK tactic the rule is tagged with (e.g. credential-access)")
    awaiting_client: bool | None = Field(
        None, description="only alerts with (or without) an unanswered question to the client")
    order: Literal["newest", "sla"] = Field(
        "newest", description="newest first, or by the next SLA deadline (resolved last)")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class AssignRequest(Request):
    assignee: Login | None = Field(description="login of the analyst; null to unassign")


class ClientRequest(Request):
    kind: Literal["validation", "action", "decision"]
    question: Text = Field(description="what the client is asked")


class EscalateRequest(Request):
    level: Level
    reason: Text
    client_request: ClientRequest | None = Field(
        None, description="ask the client something (on managed_soc the client is notified)")


class ClientAnswerRequest(Request):
    answer: Text


class AlertCounts(Response):
    new: int
    acknowledged: int
    escalated: int
    resolved: int
    breached: int = Field(description="open alerts past an SLA deadline")
    due_soon: int = Field(description="open alerts due within the next hour")
    awaiting_client: int = Field(description="alerts with an unanswered question to the client")


class CountsQuery(Request):
    tenant: Slug | None = None


class NoteRequest(Request):
    body: Text


class ResolveRequest(Request):
    resolution: Resolution
    note: Text | None = Field(None, description="kept as a note on the alert")


class ReopenRequest(Request):
    reason: Text


class ChangeResponse(Response):
    action: str
    alert: AlertDetail


class BulkRequest(Request):
    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=100)
    action: Literal["acknowledge", "assign", "note", "resolve"]
    assignee: Login | None = None
    note: Text | None = None
    resolution: Resolution | None = None


class BulkResult(Response):
    id: str
    result: Literal["ok", "not_found", "conflict", "invalid"]
    error: str | None = None


class BulkResponse(Response):
    results: list[BulkResult]


# -- audit, tenants, SLA, users ----------------------------------------------------------------

class AuditQuery(Request):
    tenant: Annotated[str, Field(max_length=64)] | None = None
    alert_id: Annotated[str, Field(max_length=64)] | None = None
    since: UtcTime | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class AuditRecord(Response):
    id: int
    tenant: str
    alert_id: str | None
    actor: str
    address: str | None
    at: str
    action: str
    before: Any
    after: Any


class AuditPage(Response):
    items: list[AuditRecord]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ContactOut(Response):
    name: str
    email: str | None
    phone: str | None


class SeveritySlaOut(Response):
    ack_seconds: int
    resolve_seconds: int


class TenantOut(Response):
    id: str
    name: str
    contract_id: str | None
    tier: str
    contact: ContactOut | None
    escalation_contacts: list[ContactOut]
    sla: dict[str, SeveritySlaOut]


class TenantList(Response):
    items: list[TenantOut]


class SlaQuery(Request):
    tenant: Slug | None = None
    since: Annotated[str, Field(max_length=40)] = Field(
        "30d", description="a duration back from now (30d) or an ISO time")


class SlaReport(Response):
    since: str
    generated_at: str
    rows: list[SlaFigures]


class UserList(Response):
    items: list[UserOut]


class UserCreate(Request):
    login: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._@-]{1,63}$")]
    display_name: ShortText
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    role: Role
    tenants: list[Slug] = Field(default_factory=list, max_length=1000)
    reason: Annotated[str, Field(max_length=500)] = ""


class UserCreated(Response):
    user: UserOut
    activation_link: str = Field(description="one-time link to hand to the user with the login")
    activation_expires: str
    enrollment_sent_to: str


class DisableRequest(Request):
    reason: Annotated[str, Field(max_length=500)] = ""


class ResetRequest(Request):
    reason: Annotated[str, Field(max_length=500)] = ""


class UnlockRequest(Request):
    reason: Annotated[str, Field(max_length=500)] = ""


class ReviewQuery(Request):
    inactive_days: int = Field(90, ge=1, le=36500)


class ReviewOut(Response):
    inactive: list[UserOut]
    never_activated: list[UserOut]
    multi_tenant: list[UserOut]
