"""Secrets the platform must read back (TOTP seeds) sealed at rest with AES-256-GCM.

Passwords and tokens are stored as hashes; a TOTP seed cannot be, because every login
recomputes codes from it. So the seed is encrypted with a key kept outside the database
(`access.default.secret_key_file`, by default `secret.key` beside the alert store, created
0600 on first use): a copied database or a backup of it alone gives no second factor away.
The row's identity is bound in as associated data, so a sealed value moved to another user's
row does not open.

A stored value reads `v1:<key id>:<base64 nonce + ciphertext>`; the key id (a digest of the
key, not the key) lets an error say that the key file was replaced rather than just "bad".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.durable import fsync_directory
from core.errors import VigilError

log = logging.getLogger(__name__)

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(VigilError):
    """A sealed value that this key cannot open (another key, or a damaged value)."""


def is_sealed(stored: str) -> bool:
    return stored.startswith(VERSION + ":")


class SecretSealer:
    """Seal and open short secrets with the key in `key_path`.

    A missing key file is created by `seal` only while `may_create()` says nothing was sealed
    yet; otherwise it is an error, never a silent new key: a store whose key is on an
    unmounted volume, or was left out of a restore, must not fork into two keys.
    """

    def __init__(self, key_path: Path, may_create: Callable[[], bool] = lambda: True) -> None:
        self.key_path = Path(key_path)
        self.may_create = may_create
        self._lock = threading.Lock()
        self._state: tuple[AESGCM, str] | None = None  # (cipher, key id), set once, whole

    def check(self) -> None:
        """Raise SealError (or OSError) unless the key file, when it exists, holds a key."""
        if self.key_path.exists():
            self._read()

    def seal(self, plaintext: str, context: str) -> str:
        aead, key_id = self._cipher(create=True)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}:{key_id}:{base64.b64encode(sealed).decode()}"

    def open(self, stored: str, context: str) -> str:
        """The plaintext; a value from before sealing (no version prefix) is returned as is."""
        if not is_sealed(stored):
            return stored
        parts = stored.split(":", 2)
        if len(parts) != 3:
            raise SealError("a sealed value without its key id or body")
        _, key_id, body = parts
        aead, own_id = self._cipher(create=False)
        if key_id != own_id:
            raise SealError(f"sealed with key {key_id}, but {self.key_path} holds key "
                            f"{own_id} (was the key file replaced?)")
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SealError(f"a value sealed with key {key_id} does not open: damaged, or "
                            f"not this row's") from exc

    def _cipher(self, create: bool) -> tuple[AESGCM, str]:
        state = self._state
        if state is None:
            with self._lock:  # threads (asyncio.to_thread logins) load the key once
                if self._state is None:
                    key = self._load(create)
                    key_id = hashlib.sha256(b"vigil-key-id:" + key).hexdigest()[:16]
                    self._state = (AESGCM(key), key_id)
                state = self._state
        return state

    def _missing(self) -> SealError:
        path = self.key_path
        return SealError(
            f"the key file {path} is missing: restore it. If it is lost, create a new one "
            f"(`head -c 32 /dev/urandom | base64 > {path}; chmod 600 {path}`) and reset every "
            "user (`vigil users reset LOGIN`)")

    def _load(self, create: bool) -> bytes:
        try:
            return self._read()
        except FileNotFoundError:
            if not create or not self.may_create():
                raise self._missing() from None
        directory = self.key_path.parent
        if not directory.exists():
            directory.mkdir(parents=True, exist_ok=True)
            fsync_directory(directory.parent)
        key = secrets.token_bytes(KEY_BYTES)
        # Written whole under a private name, then linked into place: whoever loses the race
        # (the CLI beside the daemon) reads the winner's key, never a half-written one.
        tmp = self.key_path.with_name(f".{self.key_path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(key) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.key_path)
        except FileExistsError:
            return self._read()
        finally:
            tmp.unlink()
        fsync_directory(directory)
        log.warning("created a secret key; back it up, but apart from the alert store: "
                    "without it every user must enroll TOTP again",
                    extra={"key_file": str(self.key_path)})
        return key

    def _read(self) -> bytes:
        text = self.key_path.read_bytes().strip()
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != KEY_BYTES:
            raise SealError(f"{self.key_path}: not a secret key (expected {KEY_BYTES} bytes "
                            f"in base64)")
        return key
