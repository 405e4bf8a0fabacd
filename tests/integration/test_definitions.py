"""Smoke: the one Definitions object loads and every job, asset and check resolves."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import PIPELINE_JOB, defs

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


def test_definitions_resolve():
    job = defs.resolve_job_def(PIPELINE_JOB)
    assert job.partitions_def is not None and job.partitions_def.name == "tenant_project"
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(SPINE)
    for upstream, downstream in zip(SPINE, SPINE[1:], strict=False):
        assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
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
    } <= checks
    assert set(defs.resources) >= {"db", "store", "runtime", "antivirus", "io_manager"}
    for schedule in defs.schedules or []:
        defs.resolve_schedule_def(schedule.name)
    for sensor in defs.sensors or []:
        defs.resolve_sensor_def(sensor.name)
