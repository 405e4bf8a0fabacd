"""deployment_package: the manifest of a deployable adapter (with its GGUF LoRA export and
serving runtime), recorded and made active. It runs only when the promotion gate on eval_report
passed (a blocking ERROR check)."""

import hashlib
import tempfile
from pathlib import Path

import dagster as dg
import msgspec
from dagster import AssetExecutionContext

from assets.deployment.artifacts import local_adapter_dir
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource
from resources.project_settings import ProjectSettings
from resources.settings import get_settings

PACKAGE_VERSION = "package-v2"


def export_gguf(handle, adapter: dict, version_prefix: str) -> dict:
    """The adapter as a GGUF LoRA for the llama.cpp runtime, stored beside the manifest; an
    adapter the export cannot convert is recorded with the reason (transformers still serves
    it)."""
    from assets.deployment.gguf_lora import export_gguf_lora

    peft_dir = local_adapter_dir(handle.store, adapter, get_settings().home / "cache" / "adapters")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "adapter-lora.gguf"
        try:
            export_gguf_lora(peft_dir, out)
        except ValueError as exc:
            return {"key": None, "error": str(exc)}
        data = out.read_bytes()
    key = f"{version_prefix}/adapter-lora.gguf"
    handle.store.put_bytes(key, data)
    return {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def runtime_block(settings: ProjectSettings, configured: dict | None) -> dict:
    """The deployment's runtime: the run's config over the project's `runtime` setting."""
    from resources.runtimes import RuntimeSpec

    block = msgspec.to_builtins(settings.runtime) if settings.runtime is not None else {}
    block.update(configured or {})
    return RuntimeSpec.from_manifest(block).describe()


class PackageConfig(dg.Config):
    """Serving runtime for this deployment; unset fields come from the project's `runtime`
    setting (default: transformers)."""

    runtime: dict | None = None


@dg.asset(partitions_def=tenant_project, group_name="deployment", kinds={"sql"})
def deployment_package(
    context: AssetExecutionContext,
    config: PackageConfig,
    db: Database,
    store: ObjectStoreResource,
    splits: dict,
    adapter: dict,
    retrieval_index: dict,
    eval_report: dict,
) -> dict:
    """Manifest (adapter and its GGUF LoRA export, base model, dataset and index versions, serving runtime, evaluation figures, checksums) recorded in the database and made the project's active deployment; runs only when the promotion gate passed."""
    handle = project_handle(context, db, store)
    with stage(context, handle, "deployment_package") as figures:
        manifest = {
            "package": PACKAGE_VERSION,
            "tenant": handle.tenant,
            "project": handle.project,
            "base_model": adapter["base_model"],
            "adapter_version": adapter["adapter_version"],
            "adapter_key": adapter["adapter_key"],
            "files": adapter["files"],
            "dataset_version": splits["dataset_version"],
            "chunks_key": splits["chunks_key"],
            "index_key": retrieval_index["index_key"],
            "index_version": retrieval_index.get("index_version"),
            "runtime": runtime_block(handle.settings, config.runtime),
            "metrics": eval_report["summary"],
            "gate": eval_report.get("gate"),
            "evaluation_id": eval_report.get("evaluation_id"),
            "report_key": eval_report["report_key"],
            "training": {
                k: adapter[k] for k in ("params", "steps", "final_loss", "validation_loss")
            },
            "dagster_run_id": context.run.run_id,
        }
        with handle.scope() as scope:
            deployment = scope.add_deployment(
                handle.project_id,
                base_model=adapter["base_model"],
                adapter_key=adapter["adapter_key"],
                dataset_version=splits["dataset_version"],
                manifest_key="",
                metrics=eval_report["summary"],
                dagster_run_id=context.run.run_id,
            )
            manifest["version"] = deployment.version
            manifest["gguf_lora"] = export_gguf(
                handle, adapter, f"deployments/v{deployment.version}"
            )
            key = f"deployments/v{deployment.version}/manifest.json"
            handle.store.put_json(key, manifest)
            deployment.manifest_key = key
            deployment.manifest = manifest
            scope.activate(deployment)
            scope.audit(
                "dagster",
                "deployment.activated",
                f"{handle.project}@{deployment.version}",
                {"run_id": context.run.run_id},
            )
            version = deployment.version
        figures.update(version=version)
    context.add_output_metadata(
        {
            "version": version,
            "model": f"{handle.tenant}/{handle.project}@{version}",
            "adapter_version": adapter["adapter_version"],
            "manifest_key": handle.store.key(key),
            "runtime": manifest["runtime"]["kind"],
            "gguf_lora": manifest["gguf_lora"].get("key") or manifest["gguf_lora"].get("error"),
            "candidate_semantic": round(
                eval_report["summary"]["candidate"]["semantic_similarity"], 3
            ),
        }
    )
    return {"version": version, "manifest_key": key}
