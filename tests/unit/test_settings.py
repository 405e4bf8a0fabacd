from __future__ import annotations

import os
from pathlib import Path

import pytest

from resources.settings import Settings, get_settings
from tests.conftest import OPERATOR_TOKEN


def test_defaults_live_under_privatune_home() -> None:
    settings = get_settings()
    home = Path(os.environ["PRIVATUNE_HOME"]).resolve()
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home / 'privatune.db'}"
    assert settings.object_store == "local"
    assert settings.store_root == home / "objects"
    assert settings.s3_bucket == "privatune"
    assert settings.s3_secure is False
    assert settings.s3_endpoint == ""
    assert settings.base_model == ""
    assert settings.dagster_url == "http://127.0.0.1:3000"
    assert settings.admin_token == OPERATOR_TOKEN  # set by tests/conftest.py
    assert settings.max_upload_bytes == 100 * 1024 * 1024
    assert settings.auto_migrate is True
    assert settings.train_steps == 40
    assert settings.eval_max_questions == 24
    assert settings.model_cache == Path(os.environ["PRIVATUNE_MODEL_CACHE"])


def test_settings_are_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("PRIVATUNE_TRAIN_STEPS", "7")
    assert get_settings().train_steps == 40  # cached
    get_settings.cache_clear()
    assert get_settings().train_steps == 7


def test_home_override_moves_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.database_url == f"sqlite:///{(tmp_path / 'home').resolve() / 'privatune.db'}"
    assert settings.store_root == (tmp_path / "home" / "objects").resolve()


def test_relative_home_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRIVATUNE_HOME", "rel")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.home.is_absolute()
    assert settings.home == (tmp_path / "rel").resolve()


@pytest.mark.parametrize(
    ("env", "value", "field", "expected"),
    [
        (
            "PRIVATUNE_DATABASE_URL",
            "postgresql+psycopg2://u:p@db:5432/pt",
            "database_url",
            "postgresql+psycopg2://u:p@db:5432/pt",
        ),
        ("PRIVATUNE_DATABASE_URL", "  sqlite:////x.db  ", "database_url", "sqlite:////x.db"),
        ("PRIVATUNE_OBJECT_STORE", "S3", "object_store", "s3"),
        ("PRIVATUNE_S3_ENDPOINT", "127.0.0.1:9000", "s3_endpoint", "127.0.0.1:9000"),
        ("PRIVATUNE_S3_ACCESS_KEY", "ak", "s3_access_key", "ak"),
        ("PRIVATUNE_S3_SECRET_KEY", "sk", "s3_secret_key", "sk"),
        ("PRIVATUNE_S3_BUCKET", "bucket-1", "s3_bucket", "bucket-1"),
        ("PRIVATUNE_S3_REGION", "eu-west-2", "s3_region", "eu-west-2"),
        ("PRIVATUNE_S3_SECURE", "1", "s3_secure", True),
        ("PRIVATUNE_S3_SECURE", "TRUE", "s3_secure", True),
        ("PRIVATUNE_S3_SECURE", "yes", "s3_secure", True),
        ("PRIVATUNE_S3_SECURE", "on", "s3_secure", True),
        ("PRIVATUNE_S3_SECURE", "0", "s3_secure", False),
        ("PRIVATUNE_S3_SECURE", "nope", "s3_secure", False),
        ("PRIVATUNE_S3_SECURE", "", "s3_secure", False),
        ("PRIVATUNE_AUTO_MIGRATE", "0", "auto_migrate", False),
        ("PRIVATUNE_AUTO_MIGRATE", "false", "auto_migrate", False),
        ("PRIVATUNE_AUTO_MIGRATE", "  ", "auto_migrate", True),
        ("PRIVATUNE_BASE_MODEL", "/models/llama", "base_model", "/models/llama"),
        ("PRIVATUNE_DAGSTER_URL", "http://dagster:3000/", "dagster_url", "http://dagster:3000"),
        ("PRIVATUNE_DAGSTER_LOCATION", "privatune", "dagster_location", "privatune"),
        ("PRIVATUNE_ADMIN_TOKEN", "secret", "admin_token", "secret"),
        ("PRIVATUNE_MAX_UPLOAD_BYTES", "1024", "max_upload_bytes", 1024),
        ("PRIVATUNE_MAX_UPLOAD_BYTES", "", "max_upload_bytes", 100 * 1024 * 1024),
        ("PRIVATUNE_TRAIN_STEPS", " 5 ", "train_steps", 5),
        ("PRIVATUNE_EVAL_MAX_QUESTIONS", "0", "eval_max_questions", 0),
    ],
)
def test_env_overrides(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(env, value)
    get_settings.cache_clear()
    assert getattr(get_settings(), field) == expected


def test_path_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVATUNE_STORE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PRIVATUNE_MODEL_CACHE", str(tmp_path / "models"))
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.store_root == (tmp_path / "store").resolve()
    assert settings.model_cache == tmp_path / "models"


def test_bad_integer_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVATUNE_MAX_UPLOAD_BYTES", "lots")
    get_settings.cache_clear()
    with pytest.raises(ValueError):
        get_settings()


def test_settings_are_frozen() -> None:
    settings = get_settings()
    assert isinstance(settings, Settings)
    with pytest.raises(AttributeError):
        settings.object_store = "s3"  # type: ignore[misc]


def test_cache_is_cleared_between_tests_part_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVATUNE_ADMIN_TOKEN", "leaky")
    get_settings.cache_clear()
    assert get_settings().admin_token == "leaky"


def test_cache_is_cleared_between_tests_part_two() -> None:
    assert get_settings().admin_token == OPERATOR_TOKEN
