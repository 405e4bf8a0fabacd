"""Alembic migrations: they build exactly the tables the code declares, up and down, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from resources import audit
from resources.database import MIGRATIONS_DIR, downgrade, engine_for, migrate
from resources.repository import ALL_KEY_SCOPES, authenticate, hash_api_key
from resources.tables import Plan

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_migrations_match_the_models_and_downgrade_cleanly(postgres_url):
    migrate(postgres_url)
    tables = set(inspect(engine_for(postgres_url)).get_table_names())
    assert {
        "tenants",
        "projects",
        "api_keys",
        "documents",
        "runs",
        "run_events",
        "deployments",
        "audit_events",
        "document_splits",
        "dataset_examples",
        "example_reviews",
        "dataset_versions",
    } <= tables
    columns = {c["name"] for c in inspect(engine_for(postgres_url)).get_columns("documents")}
    assert {"tenant_id", "scan_status", "quality_score", "pii_summary", "similarity"} <= columns
    # Raises when the models declare something no migration creates.
    command.check(_config(postgres_url))
    command.downgrade(_config(postgres_url), "base")
    assert set(inspect(engine_for(postgres_url)).get_table_names()) <= {"alembic_version"}
    migrate(postgres_url)
    assert "documents" in inspect(engine_for(postgres_url)).get_table_names()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_url(request, make_postgres_db, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return make_postgres_db()[1]


def test_an_existing_database_migrates_forward_and_back_with_its_rows(any_url):
    """A database from before accounts (0006) with a tenant, a project, a key and audit rows:
    upgraded, its key keeps working as the owner's with every scope and its audit rows form a
    valid chain; downgraded again, nothing of the older schema's rows is lost."""
    migrate(any_url, "0006")
    engine = engine_for(any_url)
    plain = "ptk_" + "k" * 43
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO tenants (id, slug, name, plan, created_at) "
                "VALUES ('t1', 'acme', 'Acme', 'standard', :now)"
            ),
            {"now": NOW},
        )
        c.execute(
            text(
                "INSERT INTO projects (id, tenant_id, slug, name, settings, created_at) "
                "VALUES ('p1', 't1', 'handbook', 'Handbook', '{}', :now)"
            ),
            {"now": NOW},
        )
        c.execute(
            text(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at) "
                "VALUES ('k1', 't1', 'default', :prefix, :hash, :now)"
            ),
            {"prefix": plain[:12], "hash": hash_api_key(plain), "now": NOW},
        )
        for i in range(3):
            c.execute(
                text(
                    "INSERT INTO audit_events (tenant_id, at, actor, action, target, data) "
                    "VALUES ('t1', :now, 'api_key:ptk_kkkkkkkk', :action, 'handbook', '{}')"
                ),
                {"now": NOW, "action": f"project.step{i}"},
            )
    migrate(any_url)
    with Session(engine) as session:
        tenant, key = authenticate(session, plain)
        assert tenant.slug == "acme" and tenant.plan == "standard" and tenant.status == "active"
        assert key.role == "owner" and set(key.scopes) == set(ALL_KEY_SCOPES)
        assert session.scalar(text("SELECT count(*) FROM projects")) == 1
        result = audit.verify(session, "t1")
        assert result.ok and result.rows == 3
        assert {p.id for p in session.scalars(select(Plan))} >= {"free", "standard", "enterprise"}
    downgrade(any_url, "0006")
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM projects")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM api_keys")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM audit_events")).scalar() == 3
        assert "users" not in inspect(engine).get_table_names()
