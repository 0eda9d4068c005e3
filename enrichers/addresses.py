"""IP address parsing shared by the enrichers: one rule for what a field value means as an
address, so geoip and threat_intel agree on every odd value."""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """The address a field value holds (surrounding blanks ignored), an IPv4-mapped IPv6
    address as its IPv4 address; None when the value is not an address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
