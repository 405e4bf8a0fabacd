"""Brute-force throttling of sign-in (and second-factor) attempts, per account and per client
address, kept in the database so every API process sees the same counts.

An account is locked after `ACCOUNT_FAILURES` failures within `WINDOW`, an address after
`ADDRESS_FAILURES`; the lock lasts `BASE_LOCK`, doubling with each further failure up to
`MAX_LOCK`. The account key is derived from the e-mail as typed (normalised), whether or not
such a user exists, so a lock says nothing about who has an account. Keys are keyed hashes: the
table does not list who tried."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import TooManyRequests
from resources.database import insert_if_missing
from resources.secret_box import keyed_hash
from resources.tables import AuthThrottle, utcnow

WINDOW = timedelta(minutes=15)
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
BASE_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)


def account_key(email: str) -> str:
    return keyed_hash("throttle", f"account:{email.strip().casefold()}")


def address_key(address: str | None) -> str:
    return keyed_hash("throttle", f"address:{address or 'unknown'}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def check(session: Session, keys: list[str], now: datetime | None = None) -> None:
    """Refuse (429, Retry-After) while any of the keys is locked."""
    now = now or utcnow()
    rows = session.scalars(select(AuthThrottle).where(AuthThrottle.key.in_(keys))).all()
    waits = [
        (_aware(r.locked_until) - now).total_seconds()
        for r in rows
        if r.locked_until is not None and _aware(r.locked_until) > now
    ]
    if waits:
        seconds = math.ceil(max(waits))
        raise TooManyRequests(
            f"too many failed sign-in attempts; try again in {seconds} s (or reset your "
            "password if you have forgotten it)",
            code="too_many_attempts",
            headers={"Retry-After": str(seconds)},
        )


def record_failure(
    session: Session, account: str, address: str, now: datetime | None = None
) -> None:
    now = now or utcnow()
    for key, limit in ((account, ACCOUNT_FAILURES), (address, ADDRESS_FAILURES)):
        insert_if_missing(session, AuthThrottle, key=key, failures=0, window_started_at=now)
        row = session.scalar(select(AuthThrottle).where(AuthThrottle.key == key).with_for_update())
        assert row is not None
        if now - _aware(row.window_started_at) > WINDOW and (
            row.locked_until is None or _aware(row.locked_until) <= now
        ):
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        if row.failures >= limit:
            lock = min(BASE_LOCK * (2 ** (row.failures - limit)), MAX_LOCK)
            row.locked_until = now + lock
    session.flush()


def record_success(session: Session, account: str) -> None:
    """A good password clears the account's count (not the address's: one attacker may own an
    account and guess at others)."""
    row = session.get(AuthThrottle, account)
    if row is not None:
        session.delete(row)
        session.flush()
