"""Token checks for HTTP ingest: SHA-256 digests compared in constant time.

Tokens are long random secrets, so a plain SHA-256 is enough to keep them out of the config:
inverting it needs a search of the token space, which a slow password hash would not make any
harder for a 128-bit token, while it would cost every request CPU time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from collector.sources.http.config import HttpTokenConfig, read_token_file


@dataclass(frozen=True)
class Token:
    name: str
    digest: bytes
    tenant: str | None


class TokenTable:
    """The tokens of one HTTP source."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    @classmethod
    def from_config(cls, tokens: dict[str, HttpTokenConfig], conf_dir: Path | None) -> TokenTable:
        """Raises ValueError naming the token (never its value) when a token file is unusable."""
        built = []
        for name, config in tokens.items():
            if config.sha256 is not None:
                digest = bytes.fromhex(config.sha256)
            else:
                assert config.token_file is not None
                path = config.token_file
                if not path.is_absolute() and conf_dir is not None:
                    path = conf_dir / path
                try:
                    secret = read_token_file(path)
                except ValueError as exc:
                    raise ValueError(f"token {name!r}: {exc}") from None
                digest = hashlib.sha256(secret.encode()).digest()
            built.append(Token(name, digest, config.tenant))
        return cls(built)

    def lookup(self, presented: str) -> Token | None:
        """The token matching `presented`; every entry is compared, so the time taken does not
        depend on which one (if any) matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.digest, digest):
                found = token
        return found


def parse_authorization(header: str | None) -> str | None:
    """The token of `Bearer <token>` or `Splunk <token>` (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "splunk") or not token:
        return None
    return token
