"""adapter: a LoRA / QLoRA adapter trained on the train split, checkpointed, and packaged.

A training run (`kind: training`, the `project_training` job) walks the run state machine:
queued -> preflight -> training -> packaging -> succeeded | failed | cancelled, and writes its
timeline (preflight estimate, steps with loss / learning rate / tokens per second / ETA,
checkpoints, per-epoch validation loss, errors) to `run_events`, which the API serves; the
same lines go to the Dagster log and the asset's metadata."""

import contextlib
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from assets.dataset.assets import from_jsonl
from assets.failures import StageFailure
from assets.project import ProjectHandle, project_handle, run_row, stage
from assets.training.checkpoints import StoreCheckpoints
from assets.training.config import AdapterConfig
from assets.training.trainer import TRAINER_VERSION, TrainingRefused, resolve_device, train_lora
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.model_registry import ModelNotApproved, check_approved, local_path
from resources.model_runtime import ModelNotAvailable, ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.run_states import InvalidTransition, move
from resources.settings import get_settings
from resources.tables import Tenant


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_checksum(folder: Path) -> str:
    """sha256 over the base model's weight files (cached beside them by size and mtime)."""
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    stamp = [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in weights]
    cache = folder / ".privatune-sha256.json"
    try:
        cached = json.loads(cache.read_text())
        if cached["stamp"] == stamp:
            return cached["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    for p in weights:
        digest.update(p.name.encode())
        digest.update(sha256_file(p).encode())
    value = digest.hexdigest()
    with contextlib.suppress(OSError):  # a read-only model folder: compute again next time
        cache.write_text(json.dumps({"stamp": stamp, "sha256": value}))
    return value


class Timeline:
    """The run's status moves and events, from inside the asset. Only training runs walk the
    fine states; a whole-pipeline run stays `running` and gets the events alone."""

    def __init__(self, context: AssetExecutionContext, handle: ProjectHandle):
        self.context = context
        self.handle = handle
        with handle.scope() as scope:
            row = run_row(scope, context, handle.project_id)
            self.run_id, self.kind = row.id, row.kind
        self.training = self.kind == "training"

    def move(self, status: str, message: str = "", **data: Any) -> None:
        if not self.training:
            return
        with self.handle.scope() as scope:
            row = scope.run(self.run_id)
            assert row is not None
            try:
                move(row, status, scope, message or f"training run {status}", **data)
            except InvalidTransition as exc:  # e.g. cancelled meanwhile: Dagster stops us next
                self.context.log.warning(str(exc))

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.context.log.info(message)
        with self.handle.scope() as scope:
            scope.add_run_event(self.run_id, kind, message, stage="adapter", data=data)


@dg.asset(partitions_def=tenant_project, group_name="training", kinds={"pytorch"})
def adapter(
    context: AssetExecutionContext,
    config: AdapterConfig,
    db: Database,
    store: ObjectStoreResource,
    runtime: ModelRuntime,
    splits: dict,
) -> dict:
    """A LoRA adapter (PEFT, safetensors) trained on the train split: approved base model,
    memory preflight, checkpoints in the object store (a retried run resumes), then a package
    with tokenizer, chat template, training config, metrics and a checksum manifest."""
    from assets.training.memory import available_memory, estimate_memory, preflight

    handle = project_handle(context, db, store)
    settings = get_settings()
    steps = config.max_steps or handle.settings.effective_train_steps()
    params = config.params(steps)
    timeline = Timeline(context, handle)
    version = f"{splits['dataset_version']}-{context.run.run_id[:8]}"
    prefix = f"adapters/{version}"
    with stage(context, handle, "adapter") as figures:
        try:
            with db.session() as session:
                tenant = session.get(Tenant, handle.tenant_id)
                assert tenant is not None
                model = check_approved(
                    session, tenant, config.base_model or handle.settings.base_model
                )
                base_id, licence = model.id, model.licence
                base_path = local_path(model, store.get_store())
        except (ModelNotApproved, ModelNotAvailable) as exc:
            timeline.event("error", str(exc))
            raise  # stage() explains it: which model, and what to change

        timeline.move("preflight")
        try:
            device = resolve_device(params)
        except TrainingRefused as exc:
            timeline.event("error", str(exc))
            raise
        estimate = estimate_memory(base_path, params, device)
        available = available_memory(device)
        fits, verdict = preflight(estimate, available, device)
        timeline.event(
            "preflight",
            f"preflight {'passed' if fits else 'refused the run'}: {verdict}",
            fits=fits,
            device=device,
            estimate_bytes=estimate.total,
            available_bytes=available,
            breakdown=estimate.breakdown(),
        )
        if not fits:
            raise StageFailure(
                "adapter",
                f"the memory preflight refused the run: training {base_id} on {device} {verdict}",
                "start the run again with the hyperparameters the cause suggests (POST "
                f"/v1/projects/{handle.project}/runs with hyperparameters), or run it on a "
                "GPU worker with more memory",
                code="out_of_memory",
                details={
                    "device": device,
                    "estimate_bytes": estimate.total,
                    "available_bytes": available,
                    "breakdown": estimate.breakdown(),
                },
            )

        train = [
            r["messages"]
            for r in from_jsonl(handle.store.get_bytes(splits["splits"]["train"]["key"]))
        ]
        val = [
            r["messages"]
            for r in from_jsonl(handle.store.get_bytes(splits["splits"]["validation"]["key"]))
        ]
        if not train:
            raise StageFailure(
                "adapter",
                f"the train split of dataset version {splits['dataset_version']} is empty: "
                "no example was accepted for training",
                "upload more documents with extractable facts (POST "
                f"/v1/projects/{handle.project}/documents), or approve examples waiting in the "
                f"review queue (GET /v1/projects/{handle.project}/review); then run the pipeline "
                "again",
                code="no_training_examples",
                details={"dataset_version": splits["dataset_version"]},
            )

        timeline.move("training", f"training {base_id} on {device}")
        checkpoints = StoreCheckpoints(
            handle.store,
            f"checkpoints/{timeline.run_id}",
            every=config.checkpoint_every or settings.checkpoint_every,
        )
        last_logged = [0.0]

        def on_step(info: dict) -> None:
            now = time.monotonic()
            # about one point a second: the portal's live loss curve reads these
            if info["step"] in (1, info["steps"]) or now - last_logged[0] >= 1.0:
                last_logged[0] = now
                eta = f", ETA {info['eta_seconds']:.0f} s" if info["eta_seconds"] else ""
                timeline.event(
                    "train_step",
                    f"step {info['step']}/{info['steps']} loss {info['loss']:.4f} "
                    f"lr {info['lr']:.2e} {info['tokens_per_second']:.0f} tokens/s{eta}",
                    **info,
                )

        def on_event(kind: str, message: str, data: dict) -> None:
            timeline.event(kind, message, **data)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            result = train_lora(
                base_path,
                train,
                val,
                out,
                params,
                on_step,
                checkpoints=checkpoints,
                on_event=on_event,
            )
            timeline.move("packaging")
            manifest = package(
                out,
                handle,
                prefix,
                base_path=base_path,
                extra={
                    "adapter_version": version,
                    "adapter_key": prefix,
                    "base_model": base_id,
                    "base_model_licence": licence,
                    "base_model_sha256": model_checksum(base_path),
                    "dataset_version": splits["dataset_version"],
                    "trainer": TRAINER_VERSION,
                    "params": result.params,
                    "steps": result.steps,
                    "first_loss": result.losses[0],
                    "final_loss": result.losses[-1],
                    "validation_loss": result.validation_loss,
                    "validation_losses": result.validation_losses,
                    "resumed_from_step": result.resumed_from_step,
                    "train_examples": result.train_examples,
                    "skipped_examples": result.skipped_examples,
                    "tokens_per_second": round(result.tokens_per_second, 1),
                    "train_seconds": round(result.seconds, 2),
                    "trainable_parameters": result.trainable_parameters,
                    "memory_estimate_bytes": estimate.total,
                    "dagster_run_id": context.run.run_id,
                    "run_id": timeline.run_id,
                },
                losses=result.losses,
            )
        checkpoints.clear()
        figures.update(
            steps=result.steps,
            final_loss=round(result.losses[-1], 4),
            validation_loss=(
                round(result.validation_loss, 4) if result.validation_loss is not None else None
            ),
            tokens_per_second=round(result.tokens_per_second, 1),
        )
    context.add_output_metadata(
        {
            "adapter_version": version,
            "adapter_key": handle.store.key(prefix),
            "base_model": base_id,
            "device": device,
            "steps": result.steps,
            "first_loss": round(result.losses[0], 4),
            "final_loss": round(result.losses[-1], 4),
            "validation_loss": round(result.validation_loss, 4) if result.validation_loss else None,
            "resumed_from_step": result.resumed_from_step,
            "tokens_per_second": round(result.tokens_per_second, 1),
            "train_seconds": round(result.seconds, 2),
            "trainable_parameters": result.trainable_parameters,
            "memory_estimate_gib": round(estimate.total / 2**30, 2),
            "adapter_bytes": sum(f["bytes"] for f in manifest["files"].values()),
            "loss_curve": dg.MetadataValue.json(
                {"step": list(range(1, len(result.losses) + 1)), "loss": result.losses}
            ),
        }
    )
    return manifest


def package(
    out: Path,
    handle: ProjectHandle,
    prefix: str,
    base_path: Path,
    extra: dict[str, Any],
    losses: list[float],
) -> dict:
    """Everything a deployment needs, uploaded under `prefix`: the adapter (safetensors), the
    tokenizer and chat template, the training config, the metrics, and `manifest.json` with
    the sha256 of every file, written last (an adapter without it is not usable)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(base_path).save_pretrained(out)
    (out / "training_config.json").write_text(json.dumps(extra["params"], indent=2, sort_keys=True))
    metrics = {
        key: extra[key]
        for key in (
            "steps",
            "first_loss",
            "final_loss",
            "validation_loss",
            "validation_losses",
            "tokens_per_second",
            "train_seconds",
            "resumed_from_step",
        )
    }
    (out / "metrics.json").write_text(json.dumps({**metrics, "losses": losses}, indent=2))
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            rel = path.relative_to(out).as_posix()
            handle.store.put_file(f"{prefix}/{rel}", path)
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {**extra, "files": files}
    handle.store.put_json(f"{prefix}/manifest.json", manifest)
    return manifest
