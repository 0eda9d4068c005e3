"""Tenant routing: every event gets exactly one tenant before it is queued.

An event whose tenant cannot be decided goes to the quarantine partition, never to a tenant.
"""

from __future__ import annotations

from collector.events import Event

QUARANTINE = "_quarantine"


class TenantRouter:
    """Decides the tenant of events from one source; today a fixed tenant per source."""

    def __init__(self, fixed_tenant: str | None, known_tenants: set[str]) -> None:
        self.fixed_tenant = fixed_tenant if fixed_tenant in known_tenants else None

    def route(self, event: Event, peer: str | None) -> str:
        """The tenant id for `event`, or QUARANTINE."""
        return self.fixed_tenant or QUARANTINE
