"""Token checks for HTTP ingest: SHA-256 digests compared in constant time.

Tokens are long random secrets, so a plain SHA-256 is enough to keep them out of the config:
inverting it needs a search of the token space, which a slow password hash would not make any
harder for a 128-bit token, while it would cost every request CPU time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from collector.sources.http.config import HttpTokenConfig, read_token_file
from enrichers.reloading import Signature, file_signature

log = logging.getLogger(__name__)


_NO_DIGEST = bytes(32)  # what a refused file token is compared against (no SHA-256 is zero)


@dataclass(frozen=True)
class Token:
    name: str
    digest: bytes | None  # None: a token file that is missing or unusable refuses the token
    tenant: str | None
    path: Path | None = None  # the token file, re-read when it changes
    signature: Signature | None = None


def _file_digest(name: str, path: Path) -> bytes:
    try:
        secret = read_token_file(path)
    except ValueError as exc:
        raise ValueError(f"token {name!r}: {exc}") from None
    return hashlib.sha256(secret.encode()).digest()


def _signature(path: Path) -> Signature | None:
    try:
        return file_signature(path)
    except OSError:
        return None


class TokenTable:
    """The tokens of one HTTP source. Token files are re-read when they change (`refresh`,
    from the daemon's tick): a rotated token takes over at once, and an emptied or removed
    file refuses the token (revocation), unlike enrichment files, which keep their last good
    version."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.reloads = 0
        self.reload_errors = 0

    @classmethod
    def from_config(cls, tokens: dict[str, HttpTokenConfig], conf_dir: Path | None) -> TokenTable:
        """Raises ValueError naming the token (never its value) when a token file is unusable."""
        built = []
        for name, config in tokens.items():
            if config.sha256 is not None:
                built.append(Token(name, bytes.fromhex(config.sha256), config.tenant))
                continue
            assert config.token_file is not None
            path = config.token_file
            if not path.is_absolute() and conf_dir is not None:
                path = conf_dir / path
            signature = _signature(path)  # before reading: a change meanwhile is seen next
            built.append(Token(name, _file_digest(name, path), config.tenant, path, signature))
        return cls(built)

    def refresh(self) -> int:
        """Re-read the token files that changed (one `stat` each); returns how many did."""
        changed = 0
        for index, token in enumerate(self.tokens):
            if token.path is None:
                continue
            signature = _signature(token.path)
            if signature == token.signature:
                continue
            changed += 1
            try:
                digest: bytes | None = _file_digest(token.name, token.path)
            except ValueError as exc:
                digest = None
                self.reload_errors += 1
                log.error("token file unusable; the token is refused until it is fixed",
                          extra={"token": token.name, "error": str(exc)})
            else:
                self.reloads += 1
                log.info("token file changed; the token it holds is now the one accepted",
                         extra={"token": token.name, "path": str(token.path)})
            self.tokens[index] = replace(token, digest=digest, signature=signature)
        return changed

    def lookup(self, presented: str) -> Token | None:
        """The token matching `presented`; every entry is compared, so the time taken does not
        depend on which one (if any) matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.digest or _NO_DIGEST, digest) and token.digest:
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
