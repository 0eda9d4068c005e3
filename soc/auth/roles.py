"""Roles and what they may do. Tenant scope is separate: every role acts only on its tenants
(a platform admin on all)."""

from __future__ import annotations

ROLES = ("platform_admin", "soc_l1", "soc_l2", "soc_l3", "client_operator", "client_viewer")
ALL_TENANTS = "*"  # the scope of a platform admin (never a tenant id: those are slugs)

READ = "read"          # alerts, audit, tenants, SLA reports of the scope
TRIAGE = "triage"      # acknowledge, assign, escalate, note, resolve, reopen
ADMIN = "admin"        # users
ANSWER = "answer"      # answer the SOC's questions to the client (validation/action/decision)

PERMISSIONS: dict[str, frozenset[str]] = {
    "platform_admin": frozenset({READ, TRIAGE, ADMIN, ANSWER}),
    "soc_l1": frozenset({READ, TRIAGE}),
    "soc_l2": frozenset({READ, TRIAGE}),
    "soc_l3": frozenset({READ, TRIAGE}),
    "client_operator": frozenset({READ, TRIAGE, ANSWER}),
    "client_viewer": frozenset({READ, ANSWER}),
}


def allows(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())
