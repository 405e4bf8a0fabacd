"""examples and splits: the versioned instruction dataset."""

import hashlib
import json
from collections import Counter
from dataclasses import replace
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from assets.dataset.chunking import CHUNKER_VERSION, Chunk, chunk_pages
from assets.dataset.generate import GENERATOR, Example, generate_examples
from assets.dataset.prompt import DEFAULT_SYSTEM_PROMPT
from assets.dataset.split import SPLITS, assign_splits
from assets.privacy.assets import screening_config
from assets.privacy.screening import residual_in_paragraphs, screen_texts
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource


def to_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def from_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def redact_examples(made: list[Example], screener: Any) -> list[Example]:
    """Examples whose question and answer are screened (redact policy) like the documents."""
    screened = screen_texts([t for e in made for t in (e.question, e.answer)], "redact", screener)
    out = []
    for i, example in enumerate(made):
        question, answer = screened[2 * i].text, screened[2 * i + 1].text
        if (question, answer) == (example.question, example.answer):
            out.append(example)
            continue
        messages = [dict(m) for m in example.messages]
        messages[1]["content"] = messages[1]["content"].replace(
            f"Question: {example.question}", f"Question: {question}"
        )
        messages[2]["content"] = answer
        out.append(replace(example, question=question, answer=answer, messages=messages))
    return out


def dataset_version(document_hashes: list[str], system_prompt: str) -> str:
    """Same documents and same generator settings give the same version."""
    basis = json.dumps([sorted(document_hashes), CHUNKER_VERSION, GENERATOR, system_prompt])
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


@dg.asset(
    partitions_def=tenant_project,
    group_name="dataset",
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_unredacted_pii",
            asset="examples",
            blocking=True,
            description="Under the redact policy, no personal data is left in any chunk or answer.",
        )
    ],
)
def examples(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    pii_screened_documents: dict,
):
    """Chunks with provenance (document, page, span, headings) and grounded question/answer examples in chat format."""
    handle = project_handle(context, db, store)
    system_prompt = handle.settings.get("system_prompt") or DEFAULT_SYSTEM_PROMPT
    docs = pii_screened_documents["documents"]
    with stage(context, handle, "examples") as figures:
        chunks: list[Chunk] = []
        for doc in docs:
            screened = handle.store.get_json(doc["screened_key"])
            chunks.extend(chunk_pages(doc["id"], doc["filename"], screened["pages"]))
        made = generate_examples(chunks, system_prompt=system_prompt)
        policy = pii_screened_documents["policy"]
        if policy == "redact":
            # Questions and answers are new text (a line rephrased as a sentence): screen them too.
            from assets.pii.screen import PiiScreener

            _, custom, _ = screening_config(handle.settings)
            screener = PiiScreener(custom=custom)
            made = redact_examples(made, screener)
        version = dataset_version(
            [d["sha256"] for d in docs], system_prompt + pii_screened_documents["version"]
        )
        prefix = f"datasets/{version}"
        handle.store.put_bytes(f"{prefix}/chunks.jsonl", to_jsonl([c.to_dict() for c in chunks]))
        handle.store.put_bytes(f"{prefix}/examples.jsonl", to_jsonl([e.to_dict() for e in made]))
        kinds = Counter(e.kind for e in made)
        figures.update(chunks=len(chunks), examples=len(made), dataset_version=version)
    preview = "\n".join(f"| {e.kind} | {e.question} | {e.answer[:80]} |" for e in made[:8])
    residual = 0
    if policy == "redact":
        residual = residual_in_paragraphs(
            [c.text for c in chunks] + [t for e in made for t in (e.question, e.answer)], screener
        )
    yield dg.Output(
        {
            "dataset_version": version,
            "chunks_key": f"{prefix}/chunks.jsonl",
            "examples_key": f"{prefix}/examples.jsonl",
            "documents": [
                {"id": d["id"], "filename": d["filename"], "sha256": d["sha256"]} for d in docs
            ],
            "counts": {"chunks": len(chunks), "examples": len(made), **dict(kinds)},
            "generator": GENERATOR,
            "chunker": CHUNKER_VERSION,
        },
        metadata={
            "dataset_version": version,
            "chunks": len(chunks),
            "examples": len(made),
            "by_kind": dict(kinds),
            "chunks_key": handle.store.key(f"{prefix}/chunks.jsonl"),
            "preview": dg.MetadataValue.md(
                "| kind | question | answer |\n|---|---|---|\n" + preview
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_unredacted_pii",
        passed=residual == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"policy": policy, "residual_findings": residual},
    )


@dg.asset(
    partitions_def=tenant_project,
    group_name="dataset",
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_document_in_two_splits",
            asset="splits",
            description="Every document's examples sit in exactly one split.",
        ),
        dg.AssetCheckSpec(
            "gold_split_not_empty", asset="splits", description="The gold split has examples."
        ),
    ],
)
def splits(
    context: AssetExecutionContext, db: Database, store: ObjectStoreResource, examples: dict
):
    """Train / validation / gold splits by document (no document in two splits), JSONL in the object store."""
    handle = project_handle(context, db, store)
    prefix = f"datasets/{examples['dataset_version']}"
    with stage(context, handle, "splits") as figures:
        rows = from_jsonl(handle.store.get_bytes(examples["examples_key"]))
        assignment = assign_splits(sorted({r["document_id"] for r in rows}))
        by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for row in rows:
            by_split[assignment[row["document_id"]]].append(row)
        keys = {}
        for name, items in by_split.items():
            keys[name] = f"{prefix}/{name}.jsonl"
            handle.store.put_bytes(keys[name], to_jsonl(items))
        docs_per_split = {s: sorted({r["document_id"] for r in by_split[s]}) for s in SPLITS}
        manifest = {
            "dataset_version": examples["dataset_version"],
            "splits": {
                s: {"key": keys[s], "examples": len(by_split[s]), "documents": docs_per_split[s]}
                for s in SPLITS
            },
            "chunks_key": examples["chunks_key"],
            "generator": examples["generator"],
            "chunker": examples["chunker"],
            "source_documents": examples["documents"],
        }
        handle.store.put_json(f"{prefix}/manifest.json", manifest)
        figures.update({s: len(by_split[s]) for s in SPLITS})
    seen: Counter[str] = Counter(d for docs in docs_per_split.values() for d in docs)
    crossing = [d for d, n in seen.items() if n > 1]
    yield dg.Output(
        manifest,
        metadata={
            "dataset_version": examples["dataset_version"],
            **{f"{s}_examples": len(by_split[s]) for s in SPLITS},
            **{f"{s}_documents": len(docs_per_split[s]) for s in SPLITS},
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_document_in_two_splits",
        passed=not crossing,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"documents_in_several_splits": len(crossing)},
    )
    yield dg.AssetCheckResult(
        check_name="gold_split_not_empty",
        passed=bool(by_split["gold"]),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"gold_examples": len(by_split["gold"])},
    )
