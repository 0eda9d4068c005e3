"""What the user directory hands out: accounts as shown (no secret in them), the principal a
token stands for, a new user's one-time secrets, and the errors of refused requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import VigilError
from soc.alerts.model import Actor
from soc.auth.roles import ADMIN, ALL_TENANTS, USERS, allows


class AuthError(VigilError):
    """A refused request; `reason` is for metrics and the audit log, the message for users."""

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class LoginFailed(AuthError):
    """Every login failure says the same to the client: which factor failed is not told."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid login, password or code", reason)


class User(BaseModel):
    """An account as the API and CLI show it (no secret in it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    login: str
    display_name: str
    email: str
    role: str
    status: str = Field(description="pending, active or disabled")
    tenants: list[str] = Field(description='sorted tenant ids; ["*"] for every tenant')
    created_at: str
    created_by: str
    activated_at: str | None
    last_login_at: str | None
    disabled_at: str | None = Field(None, description="when it was last disabled (kept once "
                                    "enabled again)")
    disabled_by: str | None = Field(None, description="who last disabled it")
    disabled_reason: str | None = Field(None, description="why it was last disabled")
    enabled_at: str | None = Field(None, description="when it was last enabled again after a "
                                   "disable")
    enabled_by: str | None = Field(None, description="who last enabled it again")
    locked_until: str | None = Field(
        None, description="until when some client address must wait before its next login "
        "(failed logins delay the address, not the account); null: none waits")

    def public(self) -> dict[str, Any]:
        return self.model_dump()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the user, its role and the tenants this token may reach
    (None: every tenant)."""

    login: str
    role: str
    tenants: frozenset[str] | None
    token_kind: str
    expires_at: str
    token_id: str | None = None  # the public id of the token (its lineage and revocation)

    def actor(self, address: str | None) -> Actor:
        return Actor(self.login, self.tenants, address)

    def can(self, permission: str) -> bool:
        """The role allows it. A platform admin's administration spans every tenant, so it
        also needs a token of full scope (one narrowed to some tenants could otherwise reset
        any user of them); a client admin's is its tenants by definition."""
        if self.tenants is not None and (permission == ADMIN or (
                permission == USERS and self.role == "platform_admin")):
            return False
        return allows(self.role, permission)


@dataclass(frozen=True)
class NewUser:
    """What `add_user` hands back once: the activation token and the TOTP secret."""

    user: User
    activation_token: str
    totp_secret: str
    activation_expires: str


def effective_scope(token_tenants: frozenset[str], user_tenants: frozenset[str]
                    ) -> frozenset[str] | None:
    """A token's effective tenants: its own, within the user's (None: every tenant)."""
    if ALL_TENANTS in user_tenants:
        return None if ALL_TENANTS in token_tenants else token_tenants
    if ALL_TENANTS in token_tenants:
        return user_tenants
    return token_tenants & user_tenants
