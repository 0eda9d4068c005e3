"""`type: email`: SMTP delivery (STARTTLS or implicit TLS, AUTH) of text + HTML mail, or, with
`transport: outbox`, the same message written under <data_dir>/outbox/ (soc/notify/outbox.py).

smtplib (stdlib) rather than an async client: mails are few, the daemon sends them on a thread,
and `vigil users add` sends the enrollment mail synchronously with the same code.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from soc.notify.config import EmailNotifierConfig, read_secret
from soc.notify.outbox import outbox_root, write_message


class PermanentFailure(Exception):
    """A delivery that retrying cannot fix (e.g. every recipient refused)."""


class EmailChannel:
    """Sends mail through one SMTP server."""

    config_model = EmailNotifierConfig
    channel_type = "email"

    def __init__(self, channel_id: str, config: EmailNotifierConfig,
                 conf_dir: Path | None = None, data_dir: Path | None = None) -> None:
        self.channel_id = channel_id
        self.config = config
        self.conf_dir = conf_dir
        self.data_dir = data_dir
        self._password = read_secret(config.password_file, config.password, conf_dir)

    def message(self, to: list[str], subject: str, text: str, html: str | None = None,
                attachments: list[dict[str, Any]] | None = None) -> EmailMessage:
        """A text (+ HTML) mail; `attachments` are outbox items `{filename, content_type,
        data}` with the data in base64 (a report's PDF)."""
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for item in attachments or ():
            maintype, _, subtype = str(item["content_type"]).partition("/")
            msg.add_attachment(base64.b64decode(item["data"]), maintype=maintype,
                               subtype=subtype or "octet-stream", filename=item["filename"])
        return msg

    def _context(self) -> ssl.SSLContext:
        ca = self.config.ca_file
        if ca is not None and not ca.is_absolute() and self.conf_dir is not None:
            ca = self.conf_dir / ca
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    @property
    def outbox(self) -> Path | None:
        """Where `transport: outbox` writes; None for SMTP."""
        if self.config.transport != "outbox":
            return None
        if self.data_dir is None:
            raise PermanentFailure("transport outbox needs the data directory")
        return outbox_root(self.data_dir)

    def deliver(self, msg: EmailMessage) -> None:
        """Send one message (blocking)."""
        config = self.config
        outbox = self.outbox
        if outbox is not None:
            write_message(outbox, msg)
            return
        assert config.host is not None  # the config refuses smtp without a host
        timeout = config.timeout_seconds
        smtp: smtplib.SMTP
        if config.security == "tls":
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout,
                                    context=self._context())
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if config.security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, self._password or "")
            try:
                smtp.send_message(msg)
            except smtplib.SMTPRecipientsRefused as exc:
                raise PermanentFailure(f"every recipient refused: {sorted(exc.recipients)}"
                                       ) from None

    async def send(self, payload: dict[str, Any], delivery_id: int | None = None) -> None:
        """Deliver an outbox payload ({to, subject, text, html, attachments})."""
        msg = self.message(list(payload["to"]), payload["subject"], payload["text"],
                           payload.get("html"), payload.get("attachments"))
        await asyncio.to_thread(self.deliver, msg)
