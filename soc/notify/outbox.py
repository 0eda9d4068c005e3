"""The mail outbox: `transport: outbox` writes each message as an RFC 5322 `.eml` file under
`<data_dir>/outbox/` instead of speaking SMTP.

It makes a host without a mail server complete (the example configuration, a lab, an
air-gapped collector): `vigil users add` leaves the TOTP enrollment there and `vigil outbox
list|show` reads it back. Files are written atomically (temporary name, fsync, rename) and are
readable by the daemon's user only: an enrollment mail holds a TOTP secret.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from core.durable import fsync_directory

OUTBOX_DIR = "outbox"
SUFFIX = ".eml"


def outbox_root(data_dir: Path) -> Path:
    return data_dir / OUTBOX_DIR


@dataclass(frozen=True)
class OutboxMessage:
    """One stored message; `message_id` is its file name without the suffix."""

    message_id: str
    path: Path
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def date(self) -> str:
        return str(self.message.get("Date", ""))

    def text(self) -> str:
        """The plain-text body (the first text/plain part)."""
        part = self.message.get_body(preferencelist=("plain",))
        return "" if part is None else str(part.get_content())  # type: ignore[attr-defined]

    def attachments(self) -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        for part in self.message.iter_attachments():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append((part.get_filename() or "attachment", payload))
        return found


def write_message(root: Path, msg: EmailMessage, *, now: datetime | None = None) -> Path:
    """Store `msg` (blocking); returns its path. Names sort by time of writing."""
    now = now or datetime.now(UTC)
    if "Date" not in msg:
        msg["Date"] = email.utils.format_datetime(now)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}"
    target = root / f"{name}{SUFFIX}"
    tmp = root / f".{name}.tmp"
    data = msg.as_bytes(policy=email.policy.SMTP)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_directory(root)
    return target


def _read(path: Path) -> OutboxMessage:
    with path.open("rb") as handle:
        parsed = email.message_from_binary_file(handle, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return OutboxMessage(path.name.removesuffix(SUFFIX), path, parsed)


def list_messages(root: Path) -> list[OutboxMessage]:
    """Every stored message, oldest first."""
    if not root.is_dir():
        return []
    return [_read(path) for path in sorted(root.glob(f"*{SUFFIX}"))]


class OutboxLookupError(LookupError):
    """No message, or several, answer to an id prefix."""


def find_message(root: Path, prefix: str) -> OutboxMessage:
    """The one message whose id starts with `prefix` (ids are long; a unique prefix does)."""
    if not prefix or "/" in prefix or prefix.startswith("."):
        raise OutboxLookupError(f"{prefix!r} is not a message id")
    matches = sorted(root.glob(f"{prefix}*{SUFFIX}")) if root.is_dir() else []
    if not matches:
        raise OutboxLookupError(f"no message {prefix!r} in {root} (see `vigil outbox list`)")
    if len(matches) > 1:
        raise OutboxLookupError(f"{len(matches)} messages start with {prefix!r}: give more of "
                                "the id")
    return _read(matches[0])
