"""Roles and what they may do. Tenant scope is separate: every role acts only on its tenants
(a platform admin on all). Who may grant what: a role never grants a role above its own nor a
tenant outside its scope (`grant_problem`), and manages only users it could have made: a
role it may grant, every tenant in its scope (`manages`)."""

from __future__ import annotations

from collections.abc import Collection

ROLES = ("platform_admin", "soc_l1", "soc_l2", "soc_l3", "client_admin", "client_operator",
         "client_viewer")
ALL_TENANTS = "*"  # the scope of a platform admin (never a tenant id: those are slugs)

READ = "read"          # alerts, audit, tenants, SLA reports of the scope
TRIAGE = "triage"      # acknowledge, assign, escalate, note, resolve, reopen
ADMIN = "admin"        # platform administration (needs a token of full scope)
USERS = "users"        # users and their API tokens, within the caller's tenants
ANSWER = "answer"      # answer the SOC's questions to the client (validation/action/decision)

PERMISSIONS: dict[str, frozenset[str]] = {
    "platform_admin": frozenset({READ, TRIAGE, ADMIN, USERS, ANSWER}),
    "soc_l1": frozenset({READ, TRIAGE}),
    "soc_l2": frozenset({READ, TRIAGE}),
    "soc_l3": frozenset({READ, TRIAGE}),
    "client_admin": frozenset({READ, TRIAGE, ANSWER, USERS}),
    "client_operator": frozenset({READ, TRIAGE, ANSWER}),
    "client_viewer": frozenset({READ, ANSWER}),
}
CLIENT_ROLES = ("client_admin", "client_operator", "client_viewer")
# The roles each role may hand out: a client's administrator grants only client roles.
GRANTS: dict[str, tuple[str, ...]] = {"platform_admin": ROLES, "client_admin": CLIENT_ROLES}


def allows(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def grantable_roles(role: str, scope: frozenset[str] | None) -> tuple[str, ...]:
    """The roles a caller may give (platform_admin only with a token of full scope)."""
    return tuple(r for r in GRANTS.get(role, ()) if r != "platform_admin" or scope is None)


def grant_problem(role: str, scope: frozenset[str] | None, new_role: str,
                  new_tenants: Collection[str]) -> str | None:
    """Why a caller (its role and token scope) may not give `new_role` on `new_tenants`;
    None when it may. Tenants outside the scope are named like tenants that do not exist."""
    if new_role not in grantable_roles(role, scope):
        return f"your role ({role}) cannot grant the role {new_role}"
    outside = sorted(t for t in new_tenants if scope is not None and t not in scope)
    return f"tenant {outside[0]!r} not found" if outside else None


def manages(role: str, scope: frozenset[str] | None, user_role: str,
            user_tenants: Collection[str]) -> bool:
    """A caller (its role and token scope) manages a user whose role it could grant and whose
    every tenant lies within its scope: a client admin never manages the provider's SOC
    analysts or a user that also belongs to another client; a full scope manages everyone."""
    if user_role not in GRANTS.get(role, ()):
        return False
    if scope is None:
        return True
    return bool(user_tenants) and ALL_TENANTS not in user_tenants and all(
        t in scope for t in user_tenants)
