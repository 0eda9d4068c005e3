"""Who is told what: tier-aware routing of alert events to email and webhook channels, and the
messages themselves (text + HTML mail, JSON webhook bodies).

- `siem_only`: the client's own team triages, so it gets new detections, escalations and SLA
  breaches (severity recipients; escalation contacts for escalations) and its webhooks fire.
- `managed_soc`: the SOC gets new detections, internal escalations and breaches (the email
  notifier's `soc_recipients`, `audience: soc` webhooks); the client hears only of escalations
  that ask it something (validation, action or decision), with the question; the client's
  answer goes to the SOC, whatever the tier.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from collector.config.tenants import TenantConfig
from soc.alerts.outbox import Outgoing
from soc.notify.config import EmailNotifierConfig, WebhookNotifierConfig

NEW_ALERT = "new_alert"
ESCALATION = "escalation"
SLA_BREACH = "sla_breach"
CLIENT_ANSWER = "client_answer"
CLIENT_REQUESTS = ("validation", "action", "decision")


@dataclass
class Route:
    audience: str  # "soc" or "client"
    emails: list[str]
    webhooks: list[str]


class NotificationRouter:
    """Plans the outbox rows of an alert event (called inside the store's transaction)."""

    def __init__(self, tenants: dict[str, TenantConfig], notifiers: dict[str, Any],
                 public_url: str) -> None:
        self.tenants = tenants
        self.public_url = public_url.rstrip("/")
        emails = sorted(k for k, v in notifiers.items() if isinstance(v, EmailNotifierConfig))
        self.email_channel: str | None = emails[0] if emails else None
        self.email_config: EmailNotifierConfig | None = (
            notifiers[emails[0]] if emails else None)
        self.soc_webhooks = sorted(k for k, v in notifiers.items()
                                   if isinstance(v, WebhookNotifierConfig) and v.audience == "soc")

    def route(self, event: str, alert: dict[str, Any], extra: dict[str, Any]) -> Route | None:
        tenant = self.tenants.get(alert["tenant"])
        if tenant is None:
            return None
        severity = alert["severity"]
        client_emails = tenant.notifications.email.for_severity(severity)
        asks_client = event == ESCALATION and bool(extra.get("client_request"))
        audience = ("soc" if event == CLIENT_ANSWER
                    else "client" if tenant.tier == "siem_only" or asks_client else "soc")
        if audience == "soc":
            soc = list(self.email_config.soc_recipients) if self.email_config else []
            return Route("soc", soc, list(self.soc_webhooks))
        emails = list(client_emails)
        if event == ESCALATION:
            contacts = tenant.escalation_contacts or ([tenant.contact] if tenant.contact else [])
            emails += [c.email for c in contacts if c.email]
        return Route("client", sorted(set(emails)), list(tenant.notifications.webhooks))

    def plan(self, event: str, alert: dict[str, Any], extra: dict[str, Any]) -> list[Outgoing]:
        route = self.route(event, alert, extra)
        if route is None:
            return []
        tenant = self.tenants[alert["tenant"]]
        out = []
        if route.emails and self.email_channel is not None:
            subject, text, body_html = compose_email(event, alert, extra, tenant, route.audience,
                                                     self.alert_url(alert))
            out.append(Outgoing(self.email_channel, event, {
                "to": route.emails, "subject": subject, "text": text, "html": body_html}))
        body = webhook_body(event, alert, extra, tenant, route.audience, self.alert_url(alert))
        out += [Outgoing(hook, event, {"body": body}) for hook in route.webhooks]
        return out

    def alert_url(self, alert: dict[str, Any]) -> str:
        return f"{self.public_url}/api/v1/alerts/{alert['id']}"


def _headline(event: str, alert: dict[str, Any], extra: dict[str, Any], audience: str) -> str:
    rule = alert["rule"]["name"]
    if event == NEW_ALERT:
        return f"New {alert['severity']} alert: {rule}"
    if event == ESCALATION:
        request = extra.get("client_request") or {}
        if audience == "client" and request:
            return f"{str(request.get('kind', 'decision')).title()} requested: {rule}"
        return f"Escalated to {extra.get('level')}: {rule}"
    if event == CLIENT_ANSWER:
        request = extra.get("client_request") or {}
        return f"Client answered ({request.get('kind', 'question')}): {rule}"
    kind = "acknowledge" if extra.get("kind") == "ack" else "resolve"
    return f"SLA breached (time to {kind}): {rule}"


def _facts(event: str, alert: dict[str, Any], extra: dict[str, Any], tenant: TenantConfig
           ) -> list[tuple[str, str]]:
    facts = [("Client", f"{tenant.name} ({alert['tenant']})"), ("Severity", alert["severity"]),
             ("Rule", f"{alert['rule']['name']} [{alert['rule']['id']}]"),
             ("Alert", alert["id"]), ("First seen", alert["first_seen"]),
             ("Last seen", f"{alert['last_seen']} ({alert['count']} match(es))"),
             ("Acknowledge by", alert["sla"]["ack_due"]),
             ("Resolve by", alert["sla"]["resolve_due"])]
    if alert["threat"]["techniques"]:
        facts.append(("ATT&CK", ", ".join(alert["threat"]["techniques"])))
    if event == ESCALATION:
        facts.append(("Escalation", f"{extra.get('level')}: {extra.get('reason')}"))
        request = extra.get("client_request") or {}
        if request:
            facts.append(("Request", str(request.get("kind"))))
            facts.append(("Question", str(request.get("question"))))
    if event == CLIENT_ANSWER:
        request = extra.get("client_request") or {}
        facts.append(("Question", str(request.get("question"))))
        facts.append(("Answer", f"{extra.get('answer')} ({extra.get('by')})"))
    if alert["rule"].get("runbook"):
        facts.append(("Runbook", str(alert["rule"]["runbook"])))
    return facts


def compose_email(event: str, alert: dict[str, Any], extra: dict[str, Any],
                  tenant: TenantConfig, audience: str, url: str) -> tuple[str, str, str]:
    """(subject, text, html) of a notification mail."""
    headline = _headline(event, alert, extra, audience)
    subject = f"[Vigil] [{alert['severity'].upper()}] {headline} ({tenant.name})"
    facts = _facts(event, alert, extra, tenant)
    width = max(len(k) for k, _ in facts)
    lines = [headline, ""] + [f"{k.ljust(width)}  {v}" for k, v in facts] + ["", url]
    description = alert["rule"].get("description")
    if description:
        lines[1:1] = ["", str(description)]
    rows = "".join(f"<tr><th align=\"left\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in facts)
    body_html = (f"<html><body><h2>{html.escape(headline)}</h2>"
                 + (f"<p>{html.escape(str(description))}</p>" if description else "")
                 + f"<table>{rows}</table><p><a href=\"{html.escape(url)}\">"
                 f"{html.escape(url)}</a></p></body></html>")
    return subject, "\n".join(lines) + "\n", body_html


def webhook_body(event: str, alert: dict[str, Any], extra: dict[str, Any],
                 tenant: TenantConfig, audience: str, url: str) -> dict[str, Any]:
    """The JSON a webhook receives (the alert without its matched events)."""
    body: dict[str, Any] = {"event": event, "audience": audience, "tenant": alert["tenant"],
                            "tier": tenant.tier, "summary": _headline(event, alert, extra,
                                                                      audience),
                            "url": url, "alert": alert}
    if event == ESCALATION:
        body["escalation"] = {k: extra.get(k) for k in ("level", "reason", "by",
                                                         "client_request")}
    if event == CLIENT_ANSWER:
        body["client_answer"] = {k: extra.get(k) for k in ("by", "request_id", "answer",
                                                           "client_request")}
    if event == SLA_BREACH:
        body["breach"] = {"kind": extra.get("kind")}
    return body
