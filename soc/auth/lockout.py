"""Failed logins delay one (account, client address) pair, never the account as a whole: an
outsider who guesses at an account from its own address slows only itself down, and the user
(or a platform admin) logs in from elsewhere as before.

After `max_failed_logins` failures in a row from one address, that address waits `lockout`
before its next try for the account; every further failure doubles the wait, up to
`max_lockout`; tries during the wait are refused (after the same password hash as any
refusal) without counting. A success from the address clears its count; an administrator
clears all of an account's (`vigil users unlock`). Only existing accounts are tracked (an
unknown login has nothing to protect, and tracking it would let anyone fill the table); the
answer to a refused login is the same whichever it was.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from soc.alerts.db import from_text, to_text
from soc.auth.config import AccessPolicy

FORGET_AFTER = timedelta(days=1)  # a pair without failures for this long starts over
NO_ADDRESS = "unknown"


def _key(address: str | None) -> str:
    return (address or NO_ADDRESS)[:64]


def locked_until(con: sqlite3.Connection, login: str, address: str | None, now: datetime
                 ) -> datetime | None:
    """When this pair may try again, if it must still wait."""
    row = con.execute("SELECT locked_until FROM login_failures WHERE login = ? AND address = ?",
                      (login, _key(address))).fetchone()
    until = from_text(row[0]) if row else None
    return until if until is not None and until > now else None


def account_locked_until(con: sqlite3.Connection, login: str, now: datetime) -> str | None:
    """The latest wait of any address for this account (for `vigil users list`), or None."""
    row = con.execute("SELECT MAX(locked_until) FROM login_failures WHERE login = ? AND "
                      "locked_until > ?", (login, to_text(now))).fetchone()
    return row[0] if row else None


def record_failure(con: sqlite3.Connection, policy: AccessPolicy, login: str,
                   address: str | None, now: datetime) -> datetime | None:
    """Count a failure of the pair; returns the wait it now has, if any."""
    con.execute("DELETE FROM login_failures WHERE last_failure_at < ?",
                (to_text(now - max(FORGET_AFTER, policy.max_lockout)),))
    key = _key(address)
    row = con.execute("SELECT failures FROM login_failures WHERE login = ? AND address = ?",
                      (login, key)).fetchone()
    failures = (int(row[0]) if row else 0) + 1
    over = failures - policy.max_failed_logins
    until = None
    if over >= 0:
        delay = min(policy.lockout * (2 ** min(over, 30)), policy.max_lockout)
        until = now + delay
    con.execute(
        "INSERT INTO login_failures (login, address, failures, last_failure_at, locked_until) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (login, address) DO UPDATE SET "
        "failures = excluded.failures, last_failure_at = excluded.last_failure_at, "
        "locked_until = excluded.locked_until",
        (login, key, failures, to_text(now), to_text(until) if until else None))
    return until


def clear(con: sqlite3.Connection, login: str, address: str | None = None) -> int:
    """Forget the failures of one pair (a success from it), or of every address (unlock)."""
    if address is None:
        return con.execute("DELETE FROM login_failures WHERE login = ?", (login,)).rowcount
    return con.execute("DELETE FROM login_failures WHERE login = ? AND address = ?",
                       (login, _key(address))).rowcount
