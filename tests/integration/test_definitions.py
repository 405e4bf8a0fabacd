"""Smoke: the one Definitions object loads and every job, asset and check resolves."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import PIPELINE_JOB, defs
from pipelines.sensors import EVALUATION_JOB, REEVALUATION_JOB

SPINE = [
    "raw_documents",
    "normalized_documents",
    "deduped_documents",
    "pii_screened_documents",
    "examples",
    "splits",
    "adapter",
    "eval_report",
    "deployment_package",
]
# Beside the spine: the retrieval index (from splits, read by evaluation and packaging) and the
# scheduled re-evaluation of the active deployment (its own job, not the pipeline's).
BRANCHES = {
    "retrieval_index": ["splits"],
    "deployment_evaluation": ["splits", "retrieval_index"],
}


def test_definitions_resolve():
    job = defs.resolve_job_def(PIPELINE_JOB)
    assert job.partitions_def is not None and job.partitions_def.name == "tenant_project"
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(SPINE) | set(BRANCHES)
    for upstream, downstream in zip(SPINE, SPINE[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
    for asset, parents in BRANCHES.items():
        assert {dg.AssetKey(p) for p in parents} <= graph.get(dg.AssetKey(asset)).parent_keys
    for reader in ("eval_report", "deployment_package"):
        assert dg.AssetKey("retrieval_index") in graph.get(dg.AssetKey(reader)).parent_keys
    pipeline = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert "deployment_evaluation" not in pipeline and "retrieval_index" in pipeline
    evaluation = defs.resolve_job_def(EVALUATION_JOB)
    assert {k.to_user_string() for k in evaluation.asset_layer.selected_asset_keys} == {
        "retrieval_index",
        "eval_report",
        "deployment_package",
    }
    reevaluation = defs.resolve_job_def(REEVALUATION_JOB)
    assert {k.to_user_string() for k in reevaluation.asset_layer.selected_asset_keys} == {
        "deployment_evaluation"
    }
    gate = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey("eval_report"), "promotion_gate"))
    assert gate.blocking
    assert {s.name for s in defs.schedules or []} >= {"nightly_reevaluation"}
    assert {s.name for s in defs.sensors or []} >= {"new_adapter_evaluation", "pending_scan_retry"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key} has no docstring"
        assert node.partitions_def is not None and node.partitions_def.name == "tenant_project"
    checks = {c.name for c in graph.asset_check_keys}
    assert {
        "no_document_in_two_splits",
        "no_gold_leak",
        "no_unredacted_pii",
        "quarantine_count",
        "dedupe_ratio",
        "promotion_gate",
        "no_regression",
    } <= checks
    assert set(defs.resources) >= {"db", "store", "runtime", "antivirus", "io_manager"}
    for schedule in defs.schedules or []:
        defs.resolve_schedule_def(schedule.name)
    for sensor in defs.sensors or []:
        defs.resolve_sensor_def(sensor.name)
