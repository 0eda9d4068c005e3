"""Tenant routing: every event gets exactly one tenant before it is queued.

A source names either one fixed `tenant` or a list of `routes` tried in order: by sender address
(CIDR lists), by a field of the parsed event matched against glob patterns, or both at once. An
HTTP token that names a tenant decides for its whole request. An event that no route claims goes
to the quarantine partition (`_quarantine`), never to a tenant.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.events import QUARANTINE, Event

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PEER_CACHE_SIZE = 4096  # distinct senders remembered; cleared (not grown) beyond this


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route: the tenant, and the conditions that must all hold."""

    tenant: str
    networks: tuple[Network, ...] = ()
    field: str | None = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, tenant: str, cidrs: Iterable[str] = (), field: str | None = None,
              patterns: Iterable[str] = ()) -> Route:
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        globs = list(patterns)
        pattern = None
        if globs:
            # One alternation of the translated globs; hostnames compare case-insensitively.
            pattern = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs),
                                 re.IGNORECASE)
        return cls(tenant, networks, field, pattern)

    def matches_value(self, event: Event) -> bool:
        if self.field is None or self.pattern is None:
            return True
        value = field_value(event, self.field)
        return value is not None and self.pattern.match(str(value)) is not None


def field_value(event: Event, dotted: str) -> Any:
    """`event[dotted]` for flat events; falls back to walking nested objects (JSON bodies)."""
    value = event.get(dotted)
    if value is not None or "." not in dotted:
        return value
    current: Any = event
    for part in dotted.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def peer_address(peer: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The sender's IP (IPv4-mapped IPv6 addresses unwrapped), or None if it is not one."""
    if not peer:
        return None
    try:
        address = ipaddress.ip_address(peer.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TenantRouter:
    """Decides the tenant of each event of one source."""

    def __init__(self, fixed_tenant: str | None, known_tenants: set[str],
                 routes: Iterable[Route] = ()) -> None:
        self.known_tenants = known_tenants
        self.fixed_tenant = fixed_tenant if fixed_tenant in known_tenants else None
        # A route to a tenant that is not declared (validation forbids it) can never match.
        self.routes = tuple(r for r in routes if r.tenant in known_tenants)
        self._needs_event = any(r.pattern is not None for r in self.routes)
        self._by_peer: dict[str | None, Any] = {}

    @classmethod
    def from_config(cls, source_config: Any, known_tenants: set[str]) -> TenantRouter:
        routes = [Route.build(r.tenant, r.source_cidrs, r.field, r.patterns)
                  for r in getattr(source_config, "routes", ())]
        return cls(source_config.tenant, known_tenants, routes)

    def route(self, event: Event, peer: str | None) -> str:
        """The tenant id for `event`, or QUARANTINE."""
        if self.fixed_tenant is not None:
            return self.fixed_tenant
        if not self.routes:
            return QUARANTINE
        cached = self._by_peer.get(peer)
        if cached is None:
            cached = self._peer_matches(peer)
        if not self._needs_event:
            return cached  # type: ignore[no-any-return]
        for route, peer_ok in zip(self.routes, cached, strict=True):
            if peer_ok and route.matches_value(event):
                return route.tenant
        return QUARANTINE

    def tenant_of_peer(self, peer: str | None) -> str | None:
        """The tenant of everything `peer` sends, when the sender alone decides it (a fixed
        tenant, or routes by address only); None when it is decided per event."""
        if self.fixed_tenant is not None:
            return self.fixed_tenant
        if not self.routes:
            return QUARANTINE
        if self._needs_event:
            return None
        cached: str | None = self._by_peer.get(peer)
        if cached is None:
            cached = self._peer_matches(peer)
        return cached

    def tenant_for(self, tenant: str | None) -> str | None:
        """A tenant named outside the event (an HTTP token's), if it is declared."""
        return tenant if tenant in self.known_tenants else None

    def _peer_matches(self, peer: str | None) -> Any:
        """Which routes the sender satisfies (or, without field routes, the tenant itself);
        cached per peer because senders repeat and CIDR checks are not free."""
        address = peer_address(peer)
        matches = tuple(not r.networks or (address is not None and
                                           any(address in n for n in r.networks))
                        for r in self.routes)
        result: Any = matches
        if not self._needs_event:
            result = next((r.tenant for r, ok in zip(self.routes, matches, strict=True) if ok),
                          QUARANTINE)
        if len(self._by_peer) >= _PEER_CACHE_SIZE:
            self._by_peer.clear()
        self._by_peer[peer] = result
        return result
