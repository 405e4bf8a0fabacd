"""The application database: engine, sessions and Alembic migrations, as a Dagster resource."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    """Bring the schema at `url` up to `revision` with Alembic."""
    _alembic(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str) -> None:
    """Take the schema at `url` back down to `revision` (keeping the rows the older schema
    has room for)."""
    _alembic(url, lambda cfg: command.downgrade(cfg, revision))


def _alembic(url: str, run: Callable[[AlembicConfig], None]) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = engine_for(url)
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            run(cfg)
        return
    # SQLite alters a table by copying it and dropping the old one; with foreign keys on, that
    # drop deletes (cascades) every child row. The pragma only takes effect outside a
    # transaction, so it is switched off first, and the keys are checked once done.
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # end the autobegun transaction: the pragma holds from here
        try:
            with connection.begin():
                cfg.attributes["connection"] = connection
                run(cfg)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.commit()
            if broken:
                raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


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


def insert_if_missing(session: Session, model: type, **values: Any) -> None:
    """INSERT the row unless its primary key exists: safe when two transactions race to create
    the same row (PostgreSQL and SQLite: ON CONFLICT DO NOTHING)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(model).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(model).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - the two databases privatune supports are above
        raise NotImplementedError(f"privatune supports PostgreSQL and SQLite, not {dialect}")
