"""The application database: engine, sessions and Alembic migrations, as a Dagster resource."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from alembic import command
from alembic.config import Config as AlembicConfig
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from resources.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process (pools are per engine)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _engines[url] = engine
        return engine


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The API and Dagster run workers share the file: wait for locks instead of failing.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=30)


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` with Alembic."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = engine_for(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


class Database(dg.ConfigurableResource):
    """The application database (SQLite file by default, PostgreSQL in production)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset: PRIVATUNE_DATABASE_URL or the SQLite default.",
    )
    _sessionmaker: sessionmaker[Session] | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.url or get_settings().database_url

    @property
    def engine(self) -> Engine:
        return engine_for(self.resolved_url())

    def migrate(self) -> None:
        migrate(self.resolved_url())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        if self._sessionmaker is None:
            self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        session = self._sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
