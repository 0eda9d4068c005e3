"""TOTP second factor (RFC 6238 through pyotp): secrets, enrollment URI and QR image, and code
checks that refuse a replayed code (a time step at or before the last one used)."""

from __future__ import annotations

import hmac
import io
from datetime import datetime

import pyotp
import segno

WINDOW = 1  # steps either side of now that still count (clock drift)


class ReplayedCode(Exception):
    """The code is right but its time step was already used."""


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, login: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)


def qr_png(uri: str) -> bytes:
    """The otpauth URI as a PNG QR code (segno needs no imaging library)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


def current_code(secret: str, now: datetime) -> str:
    """The code an authenticator shows at `now` (tests and enrollment checks)."""
    return pyotp.TOTP(secret).at(now)


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to (within the drift window), None when it matches none;
    raises ReplayedCode when it matches a step at or before `last_step`."""
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                raise ReplayedCode()
            return step
    return None
