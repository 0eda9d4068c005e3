"""The control listener's client address: X-Forwarded-For counts only from trusted proxies."""

from __future__ import annotations

import ipaddress

from soc.api.edge import forwarded_client, is_loopback

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert forwarded_client("203.0.113.5", ["198.51.100.1"], PROXIES) == "203.0.113.5"
    assert forwarded_client("203.0.113.5", [], ()) == "203.0.113.5"


def test_a_trusted_proxy_names_the_right_most_untrusted_hop() -> None:
    # The client wrote the left-most entry itself; the proxies appended the rest.
    assert forwarded_client("10.0.0.2", ["1.1.1.1, 198.51.100.7, 10.0.0.9"],
                            PROXIES) == "198.51.100.7"
    assert forwarded_client("10.0.0.2", ["198.51.100.7:4711"], PROXIES) == "198.51.100.7"
    assert forwarded_client("10.0.0.2", ["[2001:db8::1]:80"], PROXIES) == "2001:db8::1"


def test_garbage_in_the_chain_stops_at_the_last_hop_we_trust() -> None:
    assert forwarded_client("10.0.0.2", ["not-an-ip"], PROXIES) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["198.51.100.7, junk, 10.0.0.3"],
                            PROXIES) == "10.0.0.3"
    assert forwarded_client("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("vigil")
