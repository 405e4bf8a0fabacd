"""deployment_package: the manifest of a deployable adapter, recorded and made active."""

import dagster as dg
from dagster import AssetExecutionContext

from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource

PACKAGE_VERSION = "package-v1"


@dg.asset(partitions_def=tenant_project, group_name="deployment", kinds={"sql"})
def deployment_package(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    splits: dict,
    adapter: dict,
    eval_report: dict,
) -> dict:
    """Manifest (adapter, base model, dataset version, metrics, checksums) recorded in the database and made the project's active deployment."""
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
            "metrics": eval_report["summary"],
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
            "adapter_fuzzy_match": round(eval_report["summary"]["adapter"]["fuzzy_match"], 3),
        }
    )
    return {"version": version, "manifest_key": key}
