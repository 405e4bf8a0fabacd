"""Alembic migrations: they build exactly the tables the code declares, up and down, on PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from resources.database import MIGRATIONS_DIR, engine_for, migrate


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
