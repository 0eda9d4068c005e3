"""Opaque random tokens (sessions, API tokens, activation) and the hash they are stored as."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token(prefix: str) -> str:
    """`<prefix>_<random>`; the prefix tells a reader what kind of secret leaked."""
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def short_hash(text: str) -> str:
    """A short SHA-256 prefix of what a client typed (a login), for logs that must tell
    attempts apart without holding the text itself (users type passwords into login fields)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
