"""retrieval_index: the hybrid (BM25 + MiniLM) index of the dataset version's chunks, built
incrementally from the project's previous index (see assets.retrieval.hybrid)."""

import time

import dagster as dg
from dagster import AssetExecutionContext

from assets.dataset.assets import from_jsonl
from assets.project import project_handle, stage
from assets.retrieval.hybrid import (
    CONFIDENCE_THRESHOLD,
    build_index,
    latest_index_key,
    read_index,
    save_index,
    set_latest,
)
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStoreResource


@dg.asset(partitions_def=tenant_project, group_name="retrieval", kinds={"python"})
def retrieval_index(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    splits: dict,
) -> dict:
    """Lexical BM25 and MiniLM embeddings of the dataset version's chunks, stored under indexes/<version>/; only chunks the previous index had not embedded are embedded."""
    handle = project_handle(context, db, store)
    with stage(context, handle, "retrieval_index") as figures:
        started = time.perf_counter()
        chunks = from_jsonl(handle.store.get_bytes(splits["chunks_key"]))
        previous = None
        previous_key = latest_index_key(handle.store)
        if previous_key:
            try:
                previous = read_index(handle.store, previous_key)
            except (ObjectNotFound, ValueError, KeyError) as exc:
                # A damaged or half-deleted previous index costs a full embedding, not the run.
                context.log.warning(f"previous index {previous_key} not reused: {exc}")
        index = build_index(chunks, previous)
        key = save_index(
            handle.store,
            index,
            extra={
                "dataset_version": splits["dataset_version"],
                "chunks_key": splits["chunks_key"],
            },
        )
        set_latest(handle.store, key)
        seconds = round(time.perf_counter() - started, 3)
        figures.update(
            chunks=len(index), embedded=index.embedded, reused=index.reused, index=index.version
        )
    context.add_output_metadata(
        {
            "index_version": index.version,
            "chunks": len(index),
            "embedded": index.embedded,
            "reused": index.reused,
            "seconds": seconds,
            "previous_index": previous_key or "",
            "index_key": handle.store.key(key),
        }
    )
    return {
        "index_key": key,
        "index_version": index.version,
        "dataset_version": splits["dataset_version"],
        "chunks": len(index),
        "embedded": index.embedded,
        "reused": index.reused,
        "confidence_threshold": CONFIDENCE_THRESHOLD,
    }
