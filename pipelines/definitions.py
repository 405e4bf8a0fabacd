"""The one Dagster Definitions object of privatune (`workspace.yaml` loads only this module)."""

from __future__ import annotations

import gc

import dagster as dg

import assets.dataset.assets
import assets.dedupe.assets
import assets.deployment.assets
import assets.evaluation.assets
import assets.ingestion.assets
import assets.normalization.assets
import assets.privacy.assets
import assets.retrieval.assets
import assets.training.assets
from pipelines.partitions import tenant_project
from pipelines.sensors import (
    EVALUATION_JOB,
    ONBOARDING_JOB,
    PIPELINE_JOB,
    REEVALUATION_JOB,
    new_adapter_evaluation,
    nightly_reevaluation,
    pending_scan_retry,
)
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.logs import configure_logging
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource

TRAINING_JOB = "project_training"

# JSON lines on stderr in every process that loads the code location (code server, run
# workers): the stages' log lines carry the request id of the API request behind the run.
configure_logging()

_stage_modules = [
    assets.ingestion.assets,
    assets.normalization.assets,
    assets.dedupe.assets,
    assets.privacy.assets,
    assets.dataset.assets,
    assets.retrieval.assets,
    assets.training.assets,
    assets.evaluation.assets,
    assets.deployment.assets,
]

all_assets = dg.load_assets_from_modules(_stage_modules)
all_checks = dg.load_asset_checks_from_modules(_stage_modules)

project_pipeline = dg.define_asset_job(
    PIPELINE_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("deployment_evaluation"),
    partitions_def=tenant_project,
    description=(
        "The whole graph for one tenant-project: documents to deployed adapter (deployed only "
        "when the promotion gate passes)."
    ),
    # One process per run: the stages share the loaded base model and avoid a torch import per step.
    executor_def=dg.in_process_executor,
)

project_onboarding = dg.define_asset_job(
    ONBOARDING_JOB,
    selection=dg.AssetSelection.assets(
        "raw_documents", "normalized_documents", "deduped_documents", "pii_screened_documents"
    ),
    partitions_def=tenant_project,
    description="Onboarding only: scan, extract, normalise, dedupe and screen the project's documents.",
    executor_def=dg.in_process_executor,
)

project_training = dg.define_asset_job(
    TRAINING_JOB,
    selection=dg.AssetSelection.assets("adapter"),
    partitions_def=tenant_project,
    description=(
        "A training run: the adapter alone, on the latest dataset version (queued, preflight, "
        "training, packaging); a retried run resumes from its latest checkpoint."
    ),
    executor_def=dg.in_process_executor,
)

project_evaluation = dg.define_asset_job(
    EVALUATION_JOB,
    selection=dg.AssetSelection.assets("retrieval_index", "eval_report", "deployment_package"),
    partitions_def=tenant_project,
    description=(
        "A new adapter evaluated against the base model and the active deployment; deployed when "
        "the promotion gate passes (started by the new_adapter_evaluation sensor)."
    ),
    executor_def=dg.in_process_executor,
)

deployment_reevaluation = dg.define_asset_job(
    REEVALUATION_JOB,
    selection=dg.AssetSelection.assets("deployment_evaluation"),
    partitions_def=tenant_project,
    description="The active deployment re-evaluated on the current gold split (nightly schedule).",
    executor_def=dg.in_process_executor,
)

_store = ObjectStoreResource()

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[
        project_pipeline,
        project_onboarding,
        project_training,
        project_evaluation,
        deployment_reevaluation,
    ],
    sensors=[pending_scan_retry, new_adapter_evaluation],
    schedules=[nightly_reevaluation],
    resources={
        "antivirus": Antivirus(),
        "db": Database(),
        "store": _store,
        "runtime": ModelRuntime(),
        "io_manager": ObjectStoreManifestIOManager(store=_store),
    },
)

# Everything imported so far (Dagster, SQLAlchemy, pydantic, the stages' libraries: ~200K
# objects) lives as long as the process. Each full collection of the cyclic garbage collector
# walks all of it (~0.15 s), and interpreter shutdown runs several: ~0.6 s of every Dagster run
# worker's life. Frozen, the collector skips it; reference counting still frees what is let go.
gc.freeze()
