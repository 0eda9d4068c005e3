"""boto3 clients from an `AwsConnectionConfig`: the standard credential chain, an optional role
assumed with sts:AssumeRole (refreshed by botocore before it expires), and a custom endpoint.

boto3 is an optional dependency: this module is imported only by configured AWS components.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)

from core.aws.config import AwsConnectionConfig


class _AssumedRoleProvider(CredentialProvider):
    """Puts the assumed-role credentials first in the session's chain."""

    METHOD = "vigil-assume-role"
    CANONICAL_NAME = "custom-vigil-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def aws_session(config: AwsConnectionConfig, region: str | None) -> boto3.Session:
    """A boto3 session for `config`; with `role_arn`, its credentials are the role's."""
    core = botocore.session.Session(profile=config.profile)
    if region:
        core.set_config_variable("region", region)
    if config.role_arn is not None:
        # The base credentials come from a session of their own: a session caches the
        # credentials it resolved first, which must not be the base ones here.
        base = botocore.session.Session(profile=config.profile)
        if region:
            base.set_config_variable("region", region)

        def sts_client(service: str, **kwargs: Any) -> Any:
            return base.create_client(service, endpoint_url=config.endpoint_url, **kwargs)

        extra: dict[str, Any] = {"RoleSessionName": config.role_session_name,
                                 "DurationSeconds": config.role_duration_seconds}
        if config.external_id is not None:
            extra["ExternalId"] = config.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client, source_credentials=base.get_credentials(),
            role_arn=config.role_arn, extra_args=extra)
        credentials = DeferredRefreshableCredentials(
            method="assume-role", refresh_using=fetcher.fetch_credentials)
        core.get_component("credential_provider").insert_before(
            "env", _AssumedRoleProvider(credentials))
    return boto3.Session(botocore_session=core)


def aws_client(session: boto3.Session, service: str, config: AwsConnectionConfig, *,
               endpoint_url: str | None = None, pool: int = 10, read_timeout: float = 60.0
               ) -> Any:
    """A client of `service` with Vigil's timeouts; botocore's own retries stay on (standard
    mode) under our backoff."""
    settings = Config(retries={"mode": "standard", "max_attempts": 3},
                      max_pool_connections=pool, connect_timeout=10, read_timeout=read_timeout,
                      user_agent_extra="vigil")
    return session.client(service, endpoint_url=endpoint_url or config.endpoint_url,
                          config=settings)
