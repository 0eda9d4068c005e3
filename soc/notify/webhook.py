"""`type: webhook`: a JSON POST signed with `X-Vigil-Signature: sha256=<hex>`, the HMAC-SHA256
of the exact body bytes under the webhook's secret, so the receiver can verify origin and
integrity. `X-Vigil-Delivery` carries the outbox id, so a receiver can drop a redelivery.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from soc.notify.config import WebhookNotifierConfig, read_secret
from soc.notify.email import PermanentFailure

SIGNATURE_HEADER = "X-Vigil-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header)


class WebhookChannel:
    """POSTs JSON to one URL."""

    config_model = WebhookNotifierConfig
    channel_type = "webhook"

    def __init__(self, channel_id: str, config: WebhookNotifierConfig,
                 conf_dir: Path | None = None, data_dir: Path | None = None) -> None:
        self.channel_id = channel_id
        self.config = config
        secret = read_secret(config.secret_file, config.secret, conf_dir)
        assert secret is not None  # the config model requires one of the two
        self._secret = secret

    async def send(self, payload: dict[str, Any], delivery_id: int | None = None) -> None:
        body = orjson.dumps(payload["body"], default=str)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body),
                   "X-Vigil-Event": str(payload["body"].get("event", "")),
                   "User-Agent": "vigil-notify"}
        if delivery_id is not None:
            headers["X-Vigil-Delivery"] = str(delivery_id)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.post(self.config.url, data=body, headers=headers) as response:
            if response.status < 300:
                return
            message = f"HTTP {response.status} from the receiver"
            if 400 <= response.status < 500 and response.status not in (408, 425, 429):
                raise PermanentFailure(message)
            raise ConnectionError(message)
