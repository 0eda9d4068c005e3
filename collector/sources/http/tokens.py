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

from collector.sources.http.config import HttpTokenConfig
from core.reloading import ReloadingFile, file_stats, read_token_file

_NO_DIGEST = bytes(32)  # what a refused file token is compared against (no SHA-256 is zero)


@dataclass(frozen=True)
class Token:
    name: str
    tenant: str | None
    fixed: bytes | None = None  # the configured `sha256`
    file: ReloadingFile[bytes | None] | None = None  # or the digest of a token file

    @property
    def digest(self) -> bytes | None:
        """None: a token file that is missing or unusable refuses the token."""
        return self.file.value if self.file is not None else self.fixed


def _file_digest(path: Path) -> bytes:
    return hashlib.sha256(read_token_file(path).encode()).digest()


class TokenTable:
    """The tokens of one HTTP source. Token files are re-read when they change (`refresh`,
    from the daemon's tick): a rotated token takes over at once, and an emptied or removed
    file refuses the token (revocation), unlike enrichment files, which keep their last good
    version."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    @classmethod
    def from_config(cls, tokens: dict[str, HttpTokenConfig], conf_dir: Path | None) -> TokenTable:
        """Raises ValueError naming the token (never its value) when a token file is unusable."""
        built = []
        for name, config in tokens.items():
            if config.sha256 is not None:
                built.append(Token(name, config.tenant, fixed=bytes.fromhex(config.sha256)))
                continue
            assert config.token_file is not None
            path = config.token_file
            if not path.is_absolute() and conf_dir is not None:
                path = conf_dir / path
            try:
                file = ReloadingFile[bytes | None](path, _file_digest, what=f"token {name}",
                                                   on_error=None)
            except ValueError as exc:
                raise ValueError(f"token {name!r}: {exc}") from None
            except OSError as exc:  # the stat before the first read
                raise ValueError(f"token {name!r}: cannot read token file {path}: "
                                 f"{exc.strerror or exc}") from None
            built.append(Token(name, config.tenant, file=file))
        return cls(built)

    def refresh(self) -> int:
        """Re-read the token files that changed (one `stat` each); returns how many changed
        the token they hold."""
        return sum(token.file.refresh() for token in self.tokens if token.file is not None)

    def stats(self) -> dict[str, int]:
        """Reloads and reload errors of the token files."""
        return file_stats((t.file for t in self.tokens if t.file is not None),
                          {"reloads": 0, "reload_errors": 0})

    def lookup(self, presented: str) -> Token | None:
        """The token matching `presented`; every entry is compared, so the time taken does not
        depend on which one (if any) matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for token in self.tokens:
            expected = token.digest
            if hmac.compare_digest(expected or _NO_DIGEST, digest) and expected:
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
