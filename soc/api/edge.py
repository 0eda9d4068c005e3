"""The control listener's edge, in front of every route: who the client is (`X-Forwarded-For`
only from trusted proxies), who may read the operator endpoints (/metrics, /readyz), and the
security headers every response carries.

`client_address` is the one place the API and auth take a client address from (rate limits,
lockout, audit).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from core.reloading import ReloadingFile, read_token_file

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CLIENT = web.RequestKey("client_address", str)
_NO_DIGEST = bytes(32)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Pages are forms posting to themselves: no scripts, frames or other origins; only the
# console's own style sheet.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _ip(text: str) -> IpAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def forwarded_client(remote: str | None, forwarded_for: Iterable[str],
                     proxies: tuple[IpNetwork, ...]) -> str | None:
    """The client behind a chain of trusted proxies: `remote` unless it is a trusted proxy;
    then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
    left of it were written by whoever the client is and prove nothing)."""
    peer = _ip(remote) if remote else None
    if peer is None or not any(peer in network for network in proxies):
        return remote
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = remote
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:  # garbage in the chain: stop at the last hop we could trust
            break
        client = str(address)
        if not any(address in network for network in proxies):
            break
    return client


def client_address(request: web.Request) -> str | None:
    """The client address the API uses (rate limits, lockout, audit)."""
    return request.get(_CLIENT, request.remote)


def client_middleware(proxies: tuple[IpNetwork, ...]) -> Any:
    """Resolve the client address once per request (`client_address` reads it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = forwarded_client(request.remote,
                                  request.headers.getall("X-Forwarded-For", ()), proxies)
        if client is not None:
            request[_CLIENT] = client
        return await handler(request)

    return middleware


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: nosniff everywhere; CSP, framing and referrer rules on HTML (so
    every page served here, now or later, has them)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)


def is_loopback(host: str) -> bool:
    """True for a loopback address or `localhost`; a name or wildcard counts as exposed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OperatorToken:
    """The bearer token that opens /metrics and /readyz on an exposed listener, read from a
    file (re-read when it changes; an emptied file refuses every request)."""

    def __init__(self, path: Path) -> None:
        self.file = ReloadingFile[bytes | None](
            path, lambda p: hashlib.sha256(read_token_file(p).encode()).digest(),
            what="operator token", on_error=None)

    def matches(self, header: str) -> bool:
        self.file.refresh()
        scheme, _, presented = header.strip().partition(" ")
        digest = hashlib.sha256(presented.strip().encode("utf-8", "surrogateescape")).digest()
        expected = self.file.value
        same = hmac.compare_digest(expected or _NO_DIGEST, digest)
        return same and expected is not None and scheme.lower() == "bearer"
