"""deduped_documents: one copy of each text, exact and near duplicates set aside."""

import dagster as dg
from dagster import AssetExecutionContext

from assets.dedupe.near import NearDuplicateIndex, exact_jaccard
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource

INDEX_KEY = "dedupe/near_index.bin"
# MinHash estimates err by about 0.035 at 0.8: candidates are taken from a little below the
# threshold and then confirmed on their real shingles (recall 0.98 in bench/near_dedupe.py).
MARGIN = 0.05


def _text(handle, doc: dict) -> str:
    normalized = handle.store.get_json(doc["key"])
    return "\n\n".join(p["text"] for p in normalized["pages"])


def _confirmed_match(
    handle, index, doc_id, text, docs_by_id, threshold
) -> tuple[str, float] | None:
    """The most similar kept document whose real Jaccard similarity reaches the threshold."""
    best = None
    for candidate, _estimate in index.query(text):
        if candidate == doc_id or candidate not in docs_by_id:
            continue
        similarity = exact_jaccard(text, _text(handle, docs_by_id[candidate]))
        if similarity >= threshold and (best is None or similarity > best[1]):
            best = (candidate, similarity)
    return best


@dg.asset(
    partitions_def=tenant_project,
    group_name="dedupe",
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            "dedupe_ratio",
            asset="deduped_documents",
            description="Share of documents set aside as duplicates (warns above half).",
        )
    ],
)
def deduped_documents(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    normalized_documents: dict,
):
    """Documents without exact duplicates (same normalised-text hash) or near duplicates (MinHash LSH, Jaccard over word 3-shingles at the project's threshold), compared with everything the project already holds."""
    handle = project_handle(context, db, store)
    threshold = handle.settings.near_dup_threshold
    docs = normalized_documents["documents"]
    with stage(context, handle, "deduped_documents") as figures:
        index = None
        if handle.store.exists(INDEX_KEY):
            try:
                index = NearDuplicateIndex.loads(handle.store.get_bytes(INDEX_KEY))
            except ValueError as exc:
                context.log.warning(f"near-duplicate index unreadable, rebuilding: {exc}")
        if index is None or index.threshold != threshold or index.margin != MARGIN:
            index = NearDuplicateIndex(threshold=threshold, margin=MARGIN)
        candidates = {d["id"] for d in docs}
        for stale in [i for i in index.ids() if i not in candidates]:
            index.remove(stale)
        texts_by_id = {d["id"]: d for d in docs}
        with handle.scope() as scope:
            previous = {
                d.id: (d.duplicate_of, d.similarity or 0.0)
                for d in scope.documents(handle.project_id)
                if d.duplicate_of and (d.similarity or 0.0) < 1.0
            }
        by_hash: dict[str, str] = {}
        duplicates: dict[str, tuple[str, float, str]] = {}
        compared = 0
        for doc in docs:
            kept = by_hash.setdefault(doc["text_hash"], doc["id"])
            if kept != doc["id"]:
                duplicates[doc["id"]] = (kept, 1.0, "exact")
                if doc["id"] in index:
                    index.remove(doc["id"])
                continue
            if doc["id"] in index:
                continue
            earlier = previous.get(doc["id"])
            if earlier is not None and earlier[0] in index:
                # Found to be a near duplicate by an earlier run, and its original is still kept.
                duplicates[doc["id"]] = (earlier[0], earlier[1], "near")
                continue
            compared += 1
            text = _text(handle, doc)
            match = _confirmed_match(handle, index, doc["id"], text, texts_by_id, threshold)
            if match is not None:
                duplicates[doc["id"]] = (match[0], match[1], "near")
            else:
                index.add(doc["id"], text)
        handle.store.put_bytes(INDEX_KEY, index.dumps())
        with handle.scope() as scope:
            rows = {d.id: d for d in scope.documents(handle.project_id)}
            for doc in docs:
                row = rows.get(doc["id"])
                if row is None:
                    continue
                if doc["id"] in duplicates:
                    kept, similarity, kind = duplicates[doc["id"]]
                    row.status, row.duplicate_of, row.similarity = (
                        "duplicate",
                        kept,
                        round(similarity, 4),
                    )
                    row.failure_reason = f"duplicate: {kind} duplicate of document {kept} (similarity {similarity:.2f})"
                else:
                    row.duplicate_of, row.similarity = None, None
        kept_docs = [d for d in docs if d["id"] not in duplicates]
        figures.update(kept=len(kept_docs), duplicates=len(duplicates), compared=compared)
    ratio = len(duplicates) / len(docs) if docs else 0.0
    yield dg.Output(
        {
            "documents": kept_docs,
            "duplicates": [
                {"id": d, "duplicate_of": k, "similarity": s, "kind": kind}
                for d, (k, s, kind) in duplicates.items()
            ],
            "threshold": threshold,
        },
        metadata={
            "kept": len(kept_docs),
            "exact_duplicates": sum(1 for v in duplicates.values() if v[2] == "exact"),
            "near_duplicates": sum(1 for v in duplicates.values() if v[2] == "near"),
            "newly_compared": compared,
            "index_size": len(index),
            "threshold": threshold,
        },
    )
    yield dg.AssetCheckResult(
        check_name="dedupe_ratio",
        passed=ratio <= 0.5,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "duplicate_ratio": round(ratio, 3),
            "duplicates": len(duplicates),
            "documents": len(docs),
        },
    )
