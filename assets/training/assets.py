"""adapter: a LoRA adapter trained with PEFT on the train split."""

import hashlib
import tempfile
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from pydantic import Field

from assets.dataset.assets import from_jsonl
from assets.project import project_handle, stage
from assets.training.trainer import TRAINER_VERSION, TrainParams, train_lora
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.settings import get_settings


class AdapterConfig(dg.Config):
    """LoRA training knobs (unset fields fall back to the project's settings, then defaults)."""

    max_steps: int | None = Field(
        default=None, description="Optimisation steps (PRIVATUNE_TRAIN_STEPS by default)."
    )
    batch_size: int = Field(default=4, description="Examples per step.")
    learning_rate: float = Field(
        default=5e-4, description="Peak AdamW learning rate (cosine decay)."
    )
    rank: int = Field(default=8, description="LoRA rank r.")
    alpha: int = Field(default=16, description="LoRA alpha.")
    dropout: float = Field(default=0.05, description="LoRA dropout.")
    max_length: int = Field(
        default=512, description="Longest example in tokens; longer ones are skipped."
    )
    seed: int = Field(default=0, description="Seed for initialisation and example order.")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dg.asset(partitions_def=tenant_project, group_name="training", kinds={"pytorch"})
def adapter(
    context: AssetExecutionContext,
    config: AdapterConfig,
    db: Database,
    store: ObjectStoreResource,
    runtime: ModelRuntime,
    splits: dict,
) -> dict:
    """A LoRA adapter (PEFT, safetensors) trained on the train split, stored with its manifest."""
    handle = project_handle(context, db, store)
    steps = config.max_steps or int(
        handle.settings.get("train_steps") or get_settings().train_steps
    )
    params = TrainParams(
        max_steps=steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        rank=config.rank,
        alpha=config.alpha,
        dropout=config.dropout,
        max_length=config.max_length,
        seed=config.seed,
    )
    base_id, base_path = runtime.base_model_ref()
    version = f"{splits['dataset_version']}-{context.run.run_id[:8]}"
    prefix = f"adapters/{version}"
    with stage(context, handle, "adapter") as figures:
        train = [
            r["messages"]
            for r in from_jsonl(handle.store.get_bytes(splits["splits"]["train"]["key"]))
        ]
        val = [
            r["messages"]
            for r in from_jsonl(handle.store.get_bytes(splits["splits"]["validation"]["key"]))
        ]
        if not train:
            raise dg.Failure(
                "the train split is empty: upload more documents with extractable facts"
            )

        def on_step(step: int, loss: float, lr: float) -> None:
            if step == 1 or step % 10 == 0 or step == steps:
                context.log.info(f"step {step}/{steps} loss {loss:.4f} lr {lr:.2e}")

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            result = train_lora(base_path, train, val, out, params, on_step=on_step)
            files = {}
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    rel = path.relative_to(out).as_posix()
                    handle.store.put_file(f"{prefix}/{rel}", path)
                    files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest = {
            "adapter_version": version,
            "adapter_key": prefix,
            "files": files,
            "base_model": base_id,
            "dataset_version": splits["dataset_version"],
            "trainer": TRAINER_VERSION,
            "params": result.params,
            "steps": result.steps,
            "first_loss": result.losses[0],
            "final_loss": result.losses[-1],
            "validation_loss": result.validation_loss,
            "train_examples": result.train_examples,
            "skipped_examples": result.skipped_examples,
            "tokens_per_second": round(result.tokens_per_second, 1),
            "train_seconds": round(result.seconds, 2),
            "trainable_parameters": result.trainable_parameters,
            "dagster_run_id": context.run.run_id,
        }
        handle.store.put_json(f"{prefix}/manifest.json", manifest)
        figures.update(
            steps=result.steps,
            final_loss=round(result.losses[-1], 4),
            tokens_per_second=round(result.tokens_per_second, 1),
        )
    context.add_output_metadata(
        {
            "adapter_version": version,
            "adapter_key": handle.store.key(prefix),
            "base_model": base_id,
            "steps": result.steps,
            "first_loss": round(result.losses[0], 4),
            "final_loss": round(result.losses[-1], 4),
            "validation_loss": round(result.validation_loss, 4) if result.validation_loss else None,
            "tokens_per_second": round(result.tokens_per_second, 1),
            "train_seconds": round(result.seconds, 2),
            "trainable_parameters": result.trainable_parameters,
            "adapter_bytes": sum(f["bytes"] for f in files.values()),
        }
    )
    return manifest
