"""How Vigil reaches AWS: the connection (region, endpoint, credentials, role) that the S3/SQS
source and the S3 lake sink share."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel

_ROLE_ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:role/\S+")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


class AwsConnectionConfig(StrictModel):
    """How Vigil reaches AWS. Credentials come from the standard chain (environment, shared
    files and `profile`, container or instance role); none are written in conf.d."""

    region: str | None = Field(
        None, description="AWS region; default: the one in the queue URL, else AWS_REGION or "
        "the profile's")
    endpoint_url: str | None = Field(
        None, description="custom endpoint for every AWS call (an S3-compatible store, a "
        "VPC endpoint, a local test server)")
    profile: str | None = Field(None, description="named profile of ~/.aws/config to start from")
    role_arn: str | None = Field(
        None, description="role to assume (sts:AssumeRole) with the base credentials; "
        "refreshed before it expires")
    role_session_name: str = Field("vigil", min_length=2, max_length=64,
                                   description="session name of the assumed role")
    external_id: str | None = Field(None, description="external id the role's trust policy "
                                                      "requires (never logged)")
    role_duration_seconds: int = Field(3600, ge=900, le=43200,
                                       description="lifetime of assumed-role credentials")

    @field_validator("role_arn")
    @classmethod
    def _check_role(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an IAM role ARN "
                             "(arn:aws:iam::123456789012:role/name)")
        return value

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an AWS region name like eu-west-1")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+/?", value):
            raise ValueError(f"{value!r} is not an endpoint URL like https://s3.example.com")
        return value

    @model_validator(mode="after")
    def _external_id_needs_role(self) -> AwsConnectionConfig:
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("`external_id` is only used with `role_arn`")
        return self
