"""Shared fixtures. The environment is set before any privatune module reads its settings."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="privatune-test-"))
os.environ["PRIVATUNE_HOME"] = str(_HOME)
os.environ.setdefault("PRIVATUNE_MODEL_CACHE", str(Path.home() / ".cache" / "privatune" / "models"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
for name in list(os.environ):
    if name.startswith("PRIVATUNE_") and name not in {"PRIVATUNE_HOME", "PRIVATUNE_MODEL_CACHE"}:
        del os.environ[name]
# Tenant creation needs the operator token (no open sign-up by default): tests send this one.
OPERATOR_TOKEN = "test-operator-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
os.environ["PRIVATUNE_ADMIN_TOKEN"] = OPERATOR_TOKEN

from resources import passwords  # noqa: E402
from resources.clamd_local import ClamdInfo, start_clamd  # noqa: E402
from resources.settings import get_settings  # noqa: E402
from tests.s3server import S3ServerInfo, start_nanio  # noqa: E402

# argon2id at its production cost takes ~0.2 s a hash here; tests sign in many times.
passwords.set_cost(passwords.TEST_COST)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data" / "acme-handbook"
BAD_SAMPLES = ROOT / "sample_data" / "bad"
PG_ADMIN_URL = os.environ.get(
    "PRIVATUNE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ServerInfo]:
    """A nanio S3 server on 127.0.0.1 for the whole test session."""
    with start_nanio(tmp_path_factory.mktemp("nanio")) as info:
        yield info


@contextmanager
def _postgres_databases() -> Iterator:
    """Make throw-away PostgreSQL databases on 127.0.0.1:5432; all are dropped afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[tuple[str, str]] = []

    def make() -> tuple[str, str]:
        name = f"privatune_test_{uuid.uuid4().hex[:10]}"
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is needed for this test: {exc}")
        made.append((name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"))
        return made[-1]

    yield make
    from resources.database import _engines

    for name, url in made:
        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def make_postgres_db() -> Iterator:
    """Make throw-away PostgreSQL databases on 127.0.0.1:5432; all are dropped afterwards."""
    with _postgres_databases() as make:
        yield make


@pytest.fixture(scope="session")
def make_postgres_db_session() -> Iterator:
    """The same, for a whole test session (services that outlive one test): returns the URL."""
    with _postgres_databases() as make:
        yield lambda: make()[1]


@pytest.fixture
def postgres_url(make_postgres_db) -> str:
    """A throw-away PostgreSQL database URL (SQLAlchemy, psycopg2)."""
    return make_postgres_db()[1]


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInfo]:
    """A real clamd with a local EICAR signature database, for the whole test session."""
    with start_clamd(tmp_path_factory.mktemp("clamd")) as info:
        yield info


@pytest.fixture(scope="session")
def base_model_path() -> Path:
    """The packaged SmolLM2, converted once into the shared model cache."""
    from resources.model_runtime import resolve_base_model

    return resolve_base_model()[1]


def sample_files(names: list[str] | None = None) -> list[Path]:
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    return [p for p in files if names is None or p.name in names]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory, base_model_path: Path) -> Path:
    """A small random Llama with SmolLM2's tokenizer and chat template: the trainer's whole
    path (tokenising, packing, LoRA, checkpoints) in seconds on a CPU."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    out = tmp_path_factory.mktemp("small-llama")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (base_model_path / name).exists():
            shutil.copy(base_model_path / name, out / name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out
