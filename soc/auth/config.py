"""The `access:` section: the one access policy (entry id `default`) for logins and tokens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from core.config import Duration, StrictModel

if TYPE_CHECKING:
    from collector.config.loader import VigilConfig

POLICY_ID = "default"


class AccessPolicy(StrictModel):
    """Sessions, tokens, lockout and access review. Declared as `access: {default: {...}}`."""

    public_url: str | None = Field(
        None, description="URL users reach the control listener at (activation links, alert "
        "links in mails); default http://<vigil.control.address>")
    issuer: str = Field("Vigil", description="name shown in authenticator apps")
    session_ttl: Duration = Field(
        "8h", validate_default=True, description="login session lifetime")
    session_idle_timeout: Duration = Field(
        "30m", validate_default=True, description="a console session unused this long is "
        "signed out (revoked with the tokens made from it)")
    api_token_ttl: Duration = Field("90d", validate_default=True,
                                    description="longest lifetime of an API token")
    activation_ttl: Duration = Field("72h", validate_default=True,
                                     description="how long an activation link is valid")
    min_password_length: int = Field(12, ge=8, le=256)
    min_password_score: int = Field(
        3, ge=0, le=4, description="lowest zxcvbn strength score (0-4) a new password may "
        "have; common and guessable passwords score 0-2")
    max_failed_logins: int = Field(
        5, ge=1, description="failed logins in a row from one client address before that "
        "address is delayed for the account (other addresses are not)")
    lockout: Duration = Field(
        "1m", validate_default=True, description="the first delay of an (account, address) "
        "pair; every further failure from it doubles the delay")
    max_lockout: Duration = Field(
        "1h", validate_default=True, description="the longest delay of an (account, address) "
        "pair")
    max_activation_attempts: int = Field(
        5, ge=1, le=100, description="wrong authenticator codes an activation link takes "
        "before it stops working (the administrator resets the user for a new one)")
    login_attempts_per_minute: int = Field(
        20, ge=1, description="login attempts one client address may make per minute")
    inactive_after: Duration = Field("90d", validate_default=True,
                                     description="`vigil users review` flags users idle longer")
    secret_key_file: Path | None = Field(
        None, description="key that seals TOTP secrets in the alert store (AES-256-GCM), "
        "created 0600 on first use; default `secret.key` beside the alert store. Keep it out "
        "of the store's backups, or a copy of both gives the second factors away")
    enrollment_notifier: str | None = Field(
        None, description="email notifier that sends TOTP enrollment mails (default: the "
        "first of type email)")

    @field_validator("secret_key_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value} must be an absolute path (the daemon and the CLI must "
                             "find the same key)")
        return value


def access_policy(config: VigilConfig) -> AccessPolicy:
    policy = config.section("access").get(POLICY_ID)
    return policy if isinstance(policy, AccessPolicy) else AccessPolicy()


def public_url(config: VigilConfig) -> str:
    policy = access_policy(config)
    return (policy.public_url or f"http://{config.settings.control.address}").rstrip("/")


def check_access(config: VigilConfig, sink: Any) -> None:
    """Only the `default` policy exists; its enrollment notifier must be an email notifier."""
    for entry_id in config.section("access"):
        if entry_id != POLICY_ID:
            sink.add_for("access", entry_id, (), f"the access policy is declared as "
                         f"`access: {{{POLICY_ID}: ...}}`, not {entry_id!r}")
    policy = access_policy(config)
    if policy.secret_key_file is not None:
        from soc.auth.sealing import SealError, SecretSealer

        try:
            SecretSealer(policy.secret_key_file).check()
        except (SealError, OSError) as exc:
            sink.add_for("access", POLICY_ID, ("secret_key_file",), str(exc))
    notifier = policy.enrollment_notifier
    if notifier is not None:
        found = config.section("notifiers").get(notifier)
        if getattr(found, "type", None) != "email":
            sink.add_for("access", POLICY_ID, ("enrollment_notifier",),
                         f"{notifier!r} is not a notifier of type email")
