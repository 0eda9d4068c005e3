"""Request and response models of the user administration operations added with the console's
administration pages (the older ones are in soc/api/models.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from soc.api.models import Request, Response, Role, Slug


class AccessChange(Request):
    role: Role
    tenants: list[Slug] = Field(default_factory=list, max_length=1000,
                                description="none for platform_admin (every tenant)")
    reason: Annotated[str, Field(max_length=500)] = ""


class EnableRequest(Request):
    reason: Annotated[str, Field(min_length=1, max_length=500,
                                 description="why the account is enabled again (audited)")]


class ReviewRecord(Request):
    inactive_days: int = Field(90, ge=1, le=36500)
    note: Annotated[str, Field(max_length=500)] = ""


class ReviewRecorded(Response):
    reviewed_by: str
    inactive_days: int
    inactive: list[str]
    never_activated: list[str]
    multi_tenant: list[str]
