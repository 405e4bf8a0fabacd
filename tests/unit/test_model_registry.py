"""The approved base-model registry on a real (SQLite) database."""

from __future__ import annotations

import json

import pytest

from resources.database import Database
from resources.model_registry import (
    DEFAULT_MODEL,
    ModelEntry,
    ModelNotApproved,
    check_approved,
    default_model,
    ensure_registry,
    local_path,
    models_for,
    register,
)
from resources.model_runtime import ModelNotAvailable
from resources.tables import Tenant


@pytest.fixture
def db(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    from resources.settings import get_settings

    get_settings.cache_clear()
    database = Database()
    database.migrate()
    return database


def _entry(**over) -> ModelEntry:
    base = {
        "id": "acme/llama",
        "name": "Llama",
        "source_kind": "local",
        "source": "/nowhere",
        "licence": "llama3",
        "context_length": 8192,
    }
    return ModelEntry(**{**base, **over})


def test_smollm2_is_approved_by_default(db: Database) -> None:
    with db.session() as session:
        ensure_registry(session)
        tenant = Tenant(slug="acme", name="Acme")
        session.add(tenant)
        session.flush()
        row = check_approved(session, tenant, None)
        assert row.id == DEFAULT_MODEL.id == default_model(session).id
        assert row.source_kind == "package" and row.licence == "Apache-2.0"
        assert row.size_bytes and row.size_bytes > 50_000_000  # the packaged GGUF
        assert row.parameters == 134_515_008 and row.context_length == 8192
        assert [m.id for m in models_for(session, tenant)] == [DEFAULT_MODEL.id]


def test_tenant_plan_and_disabled_restrictions(db: Database) -> None:
    with db.session() as session:
        acme, globex = (
            Tenant(slug="acme", name="A"),
            Tenant(slug="globex", name="G", plan="enterprise"),
        )
        session.add_all([acme, globex])
        session.flush()
        register(session, _entry(allowed_tenants=["acme"]))
        register(session, _entry(id="big", allowed_plans=["enterprise"]))
        register(session, _entry(id="off", enabled=False))
        assert check_approved(session, acme, "acme/llama").id == "acme/llama"
        with pytest.raises(ModelNotApproved, match="not approved for tenant globex"):
            check_approved(session, globex, "acme/llama")
        with pytest.raises(ModelNotApproved, match="needs one of the plans enterprise"):
            check_approved(session, acme, "big")
        assert check_approved(session, globex, "big").id == "big"
        with pytest.raises(ModelNotApproved, match="disabled"):
            check_approved(session, acme, "off")
        with pytest.raises(ModelNotApproved, match="not in the approved model registry"):
            check_approved(session, acme, "ghost")
        assert {m.id for m in models_for(session, globex)} == {DEFAULT_MODEL.id, "big"}


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError, match="source_kind"):
        _entry(source_kind="ftp").validate()
    with pytest.raises(ValueError, match="context_length"):
        _entry(context_length=10).validate()
    with pytest.raises(ValueError, match="licence"):
        _entry(licence="").validate()


def test_operator_file_is_loaded_and_a_new_default_replaces_the_old(db, tmp_path, monkeypatch):
    path = tmp_path / "models.json"
    path.write_text(json.dumps([{**_entry().__dict__, "is_default": True}]))
    monkeypatch.setenv("PRIVATUNE_APPROVED_MODELS", str(path))
    from resources.settings import get_settings

    get_settings.cache_clear()
    with db.session() as session:
        ensure_registry(session)
        assert default_model(session).id == "acme/llama"


def test_local_and_hub_sources(db: Database, tmp_path) -> None:
    with db.session() as session:
        missing = register(session, _entry(source=str(tmp_path / "empty")))
        with pytest.raises(ModelNotAvailable, match="no config.json"):
            local_path(missing)
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        present = register(session, _entry(id="here", source=str(folder)))
        assert local_path(present) == folder
        hub = register(session, _entry(id="hub", source_kind="hub", source="org/model"))
        with pytest.raises(ModelNotAvailable, match="PRIVATUNE_ALLOW_HUB_MODELS"):
            local_path(hub)
