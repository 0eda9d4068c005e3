"""Password hashing with Argon2id (argon2-cffi): memory-hard, salted, self-describing hashes;
new passwords are checked with zxcvbn, a kept strength estimator that knows common passwords,
keyboard walks, repeats, dates and the user's own names."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

_HASHER = PasswordHasher()
# Verified when the login is unknown, locked or inactive, so every refused login costs as long
# as a wrong password (no answer time tells which one it was).
_DUMMY = _HASHER.hash("vigil-dummy-password")
# zxcvbn's run time grows with the length; the first characters decide the score anyway.
_ESTIMATED_CHARS = 100


def hash_password(password: str, hasher: PasswordHasher = _HASHER) -> str:
    return hasher.hash(password)


def verify_password(stored: str | None, password: str, hasher: PasswordHasher = _HASHER) -> bool:
    try:
        return hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_password_time(password: str) -> None:
    """Spend what checking a wrong password costs, for a refusal that must not be faster."""
    verify_password(None, password)


def password_problem(password: str, min_length: int, min_score: int = 3,
                     user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why a new password is refused (with the estimator's advice), or None."""
    if len(password) < min_length:
        return f"the password must have at least {min_length} characters"
    words = [w for text in user_inputs for w in (text, *text.replace("@", " ").split())]
    result = zxcvbn(password[:_ESTIMATED_CHARS], user_inputs=words)
    if result["score"] >= min_score:
        return None
    feedback = result["feedback"]
    advice = " ".join(part for part in (feedback.get("warning") or "",
                                        *feedback.get("suggestions", [])) if part)
    return ("the password is too easy to guess" + (f": {advice}" if advice else "")
            + " Try a passphrase of several uncommon words.")
