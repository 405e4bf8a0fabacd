"""Portal sessions, server side, in the application database.

The cookie carries a random session id; the `web_sessions` table keeps its SHA-256 and the
session's data, so reading the database does not give anyone a session. The cookie is HttpOnly,
SameSite=Lax, and Secure when the installation is served over HTTPS (PRIVATUNE_PUBLIC_URL).
A session id is replaced at sign-in (no fixation), and every session of a user ends when their
password changes (the user's `session_epoch` moves on; see api/authn.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items
from sqlalchemy import delete, select

from resources.database import Database
from resources.tables import WebSession, utcnow

SESSION_COOKIE = "privatune_session"
# A key the application sets in the session to have its id replaced when the response goes out.
ROTATE_KEY = "_rotate"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _user_of(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("uid") if isinstance(value, dict) else None


class DatabaseSessionStore(Store):
    """Litestar's Store interface over the `web_sessions` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _set(self, key: str, value: bytes, expires_in: int | timedelta | None) -> None:
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        expires = utcnow() + timedelta(seconds=seconds) if seconds else None
        with self.db.session() as session:
            row = session.get(WebSession, _hash(key))
            if row is None:
                session.add(
                    WebSession(
                        id_hash=_hash(key), data=value, user_id=_user_of(value), expires_at=expires
                    )
                )
            else:
                row.data, row.user_id, row.expires_at = value, _user_of(value), expires

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        await anyio.to_thread.run_sync(self._set, key, data, expires_in)

    def _get(self, key: str, renew_for: int | timedelta | None) -> bytes | None:
        with self.db.session() as session:
            row = session.get(WebSession, _hash(key))
            if row is None:
                return None
            now = utcnow()
            if row.expires_at is not None and _aware(row.expires_at) <= now:
                session.delete(row)
                return None
            if renew_for:
                seconds = (
                    renew_for.total_seconds() if isinstance(renew_for, timedelta) else renew_for
                )
                row.expires_at = now + timedelta(seconds=seconds)
            return bytes(row.data)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await anyio.to_thread.run_sync(self._get, key, renew_for)

    def _delete(self, key: str) -> None:
        with self.db.session() as session:
            session.execute(delete(WebSession).where(WebSession.id_hash == _hash(key)))

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete, key)

    def _delete_all(self) -> None:
        with self.db.session() as session:
            session.execute(delete(WebSession))

    async def delete_all(self) -> None:
        await anyio.to_thread.run_sync(self._delete_all)

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    def _expires_in(self, key: str) -> int | None:
        with self.db.session() as session:
            expires = session.scalar(
                select(WebSession.expires_at).where(WebSession.id_hash == _hash(key))
            )
        if expires is None:
            return None
        return max(0, int((_aware(expires) - utcnow()).total_seconds()))

    async def expires_in(self, key: str) -> int | None:
        return await anyio.to_thread.run_sync(self._expires_in, key)


def end_user_sessions(db_session: Any, user_id: str) -> int:
    """Remove every stored session of a user (the epoch check refuses them anyway)."""
    result = db_session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount or 0)


def _aware(value: Any) -> Any:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar's server-side sessions, plus: an id is issued only when there is something to
    keep (a script using an API key gets no cookie), and a session marked for rotation (at
    sign-in) gets a new id while the old one is deleted."""

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection
    ) -> None:
        old_id = connection.cookies.get(self.config.key)
        if old_id and not self._issued_form(old_id):
            # Not an id this server issues: nothing is kept under it and it is never echoed
            # (a client-chosen id, or bytes no header can carry back).
            old_id = None
            if isinstance(scope_session, dict) and scope_session:
                scope_session[ROTATE_KEY] = True
        if not scope_session and scope_session is not Empty and not old_id:
            return  # nothing stored, nothing to clear
        if not (isinstance(scope_session, dict) and scope_session.pop(ROTATE_KEY, False)):
            await super().store_in_message(scope_session, message, connection)
            return
        store = self.config.get_store_from_app(connection.scope["app"])
        if old_id:
            await self.delete(old_id, store=store)
        new_id = self.generate_session_id()
        await self.set(new_id, self.serialize_data(scope_session, connection.scope), store=store)
        params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        MutableScopeHeaders.from_message(message).add(
            "Set-Cookie", Cookie(value=new_id, key=self.config.key, **params).to_header(header="")
        )

    def _issued_form(self, session_id: str) -> bool:
        """Whether the id has the form generate_session_id gives (lowercase hex)."""
        return len(session_id) == 2 * self.config.session_id_bytes and all(
            c in "0123456789abcdef" for c in session_id
        )


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]


def session_config(max_age_s: int, secure: bool) -> RotatingSessionConfig:
    return RotatingSessionConfig(
        key=SESSION_COOKIE,
        max_age=max_age_s,
        renew_on_access=True,
        httponly=True,
        secure=secure,
        samesite="lax",
        store="sessions",
    )
