"""Password hashing with Argon2id (argon2-cffi): memory-hard, salted, self-describing hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# Verified when the login is unknown, so an unknown login costs as long as a wrong password.
_DUMMY = _HASHER.hash("vigil-dummy-password")


def hash_password(password: str, hasher: PasswordHasher = _HASHER) -> str:
    return hasher.hash(password)


def verify_password(stored: str | None, password: str, hasher: PasswordHasher = _HASHER) -> bool:
    try:
        return hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str, min_length: int) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < min_length:
        return f"the password must have at least {min_length} characters"
    if len(set(password)) < 5:
        return "the password is too repetitive"
    return None
