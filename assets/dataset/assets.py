"""examples and splits: the versioned, scored and reviewed instruction dataset."""

import hashlib
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from assets.dataset.chunking import CHUNKER_VERSION, Chunk, chunk_pages, tokenizer_counter
from assets.dataset.export import export_row, sha256_bytes, to_parquet
from assets.dataset.export import from_jsonl as from_jsonl
from assets.dataset.export import to_jsonl as to_jsonl
from assets.dataset.generate import (
    GENERATOR,
    DeterministicGenerator,
    Example,
    PairGenerator,
    QAPair,
    build_examples,
    first_of_each_id,
)
from assets.dataset.leaks import context_leaks, near_duplicate_chunks, question_leaks
from assets.dataset.model_generator import ModelGenerator, ModelGeneratorConfig, build_client
from assets.dataset.pii_review import (
    MAX_REPORTED,
    ResidualFinding,
    find_residual,
    redact_chunks,
    route_to_review,
)
from assets.dataset.pii_review import summary as pii_summary
from assets.dataset.refusals import (
    allocate,
    escalation_questions,
    policy_examples,
    refusal_questions,
)
from assets.dataset.review import apply_decision, select_for_training
from assets.dataset.scoring import SCORER_VERSION, merge_duplicates, route, score_example
from assets.dataset.split import SPLITS, assign_splits
from assets.failures import StageFailure
from assets.privacy.assets import screening_config
from assets.privacy.screening import screen_texts
from assets.project import ProjectHandle, project_handle, record_check_failure, run_row, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.project_settings import ProjectSettings


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


def dataset_settings(settings: ProjectSettings) -> dict[str, Any]:
    """The project's dataset settings (what the generation id hashes: keys and value types must
    not change, or every project's dataset is built anew)."""
    return {
        "system_prompt": settings.system_prompt,
        "refusal_text": settings.refusal_text,
        "escalation_text": settings.escalation_text,
        "refusal_share": settings.refusal_share,
        "generators": list(settings.generators),
        "generator_model": ModelGeneratorConfig.from_settings(settings.generator_model).describe(),
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "split_seed": settings.split_seed,
        "review_policy": settings.review_policy,
        "pii_residual": settings.pii_residual,
        "auto_accept_threshold": settings.auto_accept_threshold,
        "review_sample_rate": settings.review_sample_rate,
    }


def generation_id(document_hashes: list[str], config: dict[str, Any], screening: str) -> str:
    """Same documents and same generator settings give the same generation."""
    basis = json.dumps(
        [sorted(document_hashes), CHUNKER_VERSION, GENERATOR, SCORER_VERSION, config, screening],
        sort_keys=True,
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def document_type(filename: str, detected: str | None) -> str:
    return (detected or PurePosixPath(filename).suffix.lstrip(".") or "unknown").lower()


def spread(chunks: list[Chunk], limit: int | None) -> list[Chunk]:
    """At most `limit` chunks, spread over documents (a stable hash order, one per document in turn)."""
    if limit is None or len(chunks) <= limit:
        return chunks
    by_doc: dict[str, list[Chunk]] = {}
    for c in sorted(chunks, key=lambda c: hashlib.sha256(c.id.encode()).hexdigest()):
        by_doc.setdefault(c.document_id, []).append(c)
    picked: list[Chunk] = []
    while len(picked) < limit:
        for doc in sorted(by_doc):
            if by_doc[doc] and len(picked) < limit:
                picked.append(by_doc[doc].pop(0))
    return picked


def row_to_example(row: Any) -> Example:
    return Example(
        id=row.key,
        document_id=row.document_id,
        chunk_id=(row.citations or [""])[0],
        question=row.question,
        answer=row.answer,
        kind=row.kind,
        generator=row.generator,
        citations=list(row.citations or []),
        messages=list(row.messages or []),
        split=row.split,
        scores=dict(row.scores or {}),
        status=row.status,
        review_reason=row.review_reason,
        duplicate_of=row.duplicate_of,
        context=list(row.context or []),
    )


def example_row(example: Example, original: dict | None = None) -> dict[str, Any]:
    return {
        "key": example.id,
        "document_id": example.document_id,
        "split": example.split,
        "kind": example.kind,
        "generator": example.generator,
        "question": example.question,
        "answer": example.answer,
        "messages": example.messages,
        "citations": example.citations,
        "context": example.context,
        "scores": example.scores,
        "score": float(example.scores.get("overall") or 0.0),
        "status": example.status,
        "review_reason": example.review_reason,
        "duplicate_of": example.duplicate_of,
        "original": original or {},
    }


def build_generators(config: dict[str, Any], runtime: ModelRuntime) -> list[PairGenerator]:
    out: list[PairGenerator] = []
    for name in config["generators"]:
        if name == "deterministic":
            out.append(DeterministicGenerator())
        elif name == "model":
            model_config = ModelGeneratorConfig.from_settings(config["generator_model"])
            base_path = runtime.base_model_ref()[1] if model_config.provider == "local" else None
            out.append(ModelGenerator(build_client(model_config, base_path), model_config))
        else:
            raise StageFailure(
                "examples",
                f"unknown generator {name!r} in the project's setting generators",
                "set generators to a list of `deterministic` and/or `model` (PATCH "
                "/v1/projects/{project} with settings.generators), then run again",
                code="invalid_setting",
                details={"setting": "generators", "value": name},
            )
    return out


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
    runtime: ModelRuntime,
    pii_screened_documents: dict,
):
    """Token-sized chunks with provenance, grounded examples from each configured generator, refusal and escalation examples; every example scored and routed to review or auto-accepted."""
    handle = project_handle(context, db, store)
    config = dataset_settings(handle.settings)
    docs = pii_screened_documents["documents"]
    policy = pii_screened_documents["policy"]
    screener = None
    with stage(context, handle, "examples") as figures:
        count = tokenizer_counter(runtime.base_model_ref()[1])
        chunks: list[Chunk] = []
        for doc in docs:
            screened = handle.store.get_json(doc["screened_key"])
            chunks.extend(
                chunk_pages(
                    doc["id"],
                    doc["filename"],
                    screened["pages"],
                    max_tokens=config["chunk_tokens"],
                    overlap_tokens=config["chunk_overlap_tokens"],
                    count_tokens=count,
                )
            )
        generation = generation_id(
            [d["sha256"] for d in docs], config, pii_screened_documents["version"]
        )

        # Splits are decided before generation: distractor passages come from the same split only.
        with handle.scope() as scope:
            detected = {d.id: d.detected_type for d in scope.documents(handle.project_id)}
            frozen = scope.document_splits(handle.project_id)
            previous = scope.latest_generation(handle.project_id)
            previous_gold = (
                [
                    row_to_example(r)
                    for r in scope.examples(handle.project_id, previous, split="gold")
                ]
                if previous and previous != generation
                else []
            )
        types = {d["id"]: document_type(d["filename"], detected.get(d["id"])) for d in docs}
        assignment = assign_splits(
            [d["id"] for d in docs], seed=config["split_seed"], types=types, frozen=frozen
        )
        with handle.scope() as scope:
            scope.freeze_document_splits(handle.project_id, assignment)
        by_split = {s: [c for c in chunks if assignment[c.document_id] == s] for s in SPLITS}
        # Passages of train/validation that repeat a gold passage never reach training.
        tainted = near_duplicate_chunks(
            {c.id: c.text for c in by_split["gold"]},
            {c.id: c.text for s in ("train", "validation") for c in by_split[s]},
        )
        usable = {s: [c for c in by_split[s] if c.id not in tainted] for s in SPLITS}
        # The gold set is frozen: documents with gold examples in the previous generation keep them.
        kept_gold = [
            e for e in previous_gold if e.document_id and assignment.get(e.document_id) == "gold"
        ]
        frozen_docs = {e.document_id for e in kept_gold}
        usable["gold"] = [c for c in usable["gold"] if c.document_id not in frozen_docs]

        made: list[Example] = []
        timings: dict[str, float] = {}
        generators = build_generators(config, runtime)
        for generator in generators:
            started = time.perf_counter()
            limit = config["generator_model"]["max_chunks"] if generator.name != GENERATOR else None
            for split in SPLITS:
                source = spread(usable[split], limit)
                pairs: list[list[QAPair]] = generator.pairs(source) if source else []
                made.extend(
                    build_examples(
                        source,
                        pairs,
                        generator.name,
                        pool=usable[split],
                        system_prompt=config["system_prompt"],
                        seed=config["split_seed"],
                        split=split,
                    )
                )
            timings[generator.name] = round(time.perf_counter() - started, 3)
        if policy == "redact" and made:
            # Questions and answers are new text (a line rephrased as a sentence): screen them too.
            screener = screening_config(handle.settings, "examples").screener()
            made = redact_examples(made, screener)

        # Refusal and escalation examples, train and validation only (gold measures grounded
        # answers); each split gets its own questions so none repeats across splits.
        grounded = Counter(e.split for e in made if e.split != "gold")
        share = config["refusal_share"]
        wanted = round(share * sum(grounded.values()) / (1 - share)) if share < 1 else 0
        for kind, questions, answer in (
            ("refusal", refusal_questions(chunks, config["split_seed"]), config["refusal_text"]),
            (
                "escalation",
                escalation_questions(chunks, config["split_seed"]),
                config["escalation_text"],
            ),
        ):
            per_split = allocate(
                min(len(questions), (wanted + (kind == "refusal")) // 2),
                {"train": grounded["train"], "validation": grounded["validation"]},
            )
            offset = 0
            for split in ("train", "validation"):
                take = questions[offset : offset + per_split[split]]
                offset += len(take)
                made.extend(
                    policy_examples(
                        take,
                        kind,
                        answer,
                        usable[split] or usable["train"],
                        split,
                        config["system_prompt"],
                        seed=config["split_seed"],
                    )
                )

        texts = {c.id: c.text for c in chunks}
        made = [
            replace(e, scores=score_example(e, texts.get(e.chunk_id) if e.chunk_id else None))
            for e in made
        ]
        made = merge_duplicates(made)
        made = route(
            made,
            config["auto_accept_threshold"],
            config["review_sample_rate"],
            config["split_seed"],
        )
        # A train/validation question that repeats a gold one is merged into it.
        gold_rows = [e.to_dict() for e in made if e.split == "gold"] + [
            e.to_dict() for e in kept_gold
        ]
        others = [e.to_dict() for e in made if e.split != "gold" and e.status != "merged"]
        leaking = {leak.train: leak.gold for leak in question_leaks(gold_rows, others)}
        made = [
            replace(e, status="merged", duplicate_of=leaking[e.id], review_reason="gold_leak")
            if e.id in leaking
            else e
            for e in made
        ]
        made = first_of_each_id(kept_gold + made)
        # The project's own evaluation questions are never trained on: a generated question
        # that repeats one leaves the dataset.
        with handle.scope() as scope:
            own = [
                {"id": q.id, "question": q.question, "answer": q.answer or ""}
                for q in scope.evaluation_questions(handle.project_id)
            ]
        repeats = {
            leak.train
            for leak in question_leaks(own, [e.to_dict() for e in made if e.status != "merged"])
        }
        made = [
            replace(e, status="merged", review_reason="evaluation_set") if e.id in repeats else e
            for e in made
        ]

        # Personal data the redaction left (found again in chunks, questions and answers):
        # to the review queue and redacted in the chunks, or the run fails, by pii_residual.
        residual: list[ResidualFinding] = []
        routed = 0
        if policy == "redact":
            screener = screener or screening_config(handle.settings, "examples").screener()
            residual, in_chunks = find_residual(chunks, made, screener)
            if residual and config["pii_residual"] == "review":
                chunks = redact_chunks(chunks, in_chunks, screener)
                made, routed = route_to_review(made, residual)

        with handle.scope() as scope:
            decisions = scope.latest_reviews(handle.project_id)
            rows = []
            for example in made:
                original: dict = {}
                decision = decisions.get(example.id)
                row = example_row(example)
                if decision is not None and example.status != "merged":
                    row = {
                        **row,
                        **{
                            k: v
                            for k, v in apply_decision(
                                {**row, "messages": example.messages},
                                {
                                    "decision": decision.decision,
                                    "question": decision.question,
                                    "answer": decision.answer,
                                },
                            ).items()
                            if k in ("status", "question", "answer", "messages")
                        },
                        "reviewed_by": decision.reviewer,
                        "reviewed_at": decision.at,
                    }
                    if decision.decision == "edited":
                        original = {"question": example.question, "answer": example.answer}
                    row["original"] = original
                rows.append(row)
            scope.replace_examples(handle.project_id, generation, rows)
        prefix = f"datasets/generations/{generation}"
        handle.store.put_bytes(f"{prefix}/chunks.jsonl", to_jsonl([c.to_dict() for c in chunks]))
        handle.store.put_bytes(f"{prefix}/examples.jsonl", to_jsonl(rows_for_export(rows)))
        kinds = Counter(r["kind"] for r in rows)
        statuses = Counter(r["status"] for r in rows)
        figures.update(
            evaluation_set_repeats=len(repeats),
            chunks=len(chunks),
            examples=len(rows),
            generation=generation,
            pending_review=statuses["pending"],
        )
    preview = "\n".join(
        f"| {r['kind']} | {r['status']} | {r['question']} | {r['answer'][:80]} |" for r in rows[:8]
    )
    failed = bool(residual) and config["pii_residual"] == "fail"
    if residual:
        details = {
            "findings": [f.to_dict() for f in residual[:MAX_REPORTED]],
            "findings_total": len(residual),
            "routed_to_review": routed,
        }
        if failed:
            record_check_failure(
                handle,
                context,
                "no_unredacted_pii",
                StageFailure(
                    "examples",
                    pii_summary(residual),
                    "look at the findings (GET /v1/projects/<project>/runs/<run id>, failure."
                    "details): add words that are not personal data to settings.pii_allow_terms, "
                    "drop an entity type from settings.pii_entities, add a custom recogniser for "
                    "what redaction missed, or set settings.pii_residual to review to send such "
                    "examples to the review queue; then run again",
                    code="pii_found",
                    details=details,
                ),
            )
        else:
            with handle.scope() as scope:
                scope.add_run_event(
                    run_row(scope, context, handle.project_id).id,
                    "pii_review",
                    f"examples: {pii_summary(residual)}; {routed} example(s) sent to the review "
                    "queue (GET /v1/projects/<project>/review), the findings redacted in the chunks",
                    stage="examples",
                    data=details,
                )
    generator_info = {
        "names": [g.name for g in generators],
        "seconds": timings,
        "settings": {k: v for k, v in config.items() if k not in ("refusal_text",)},
    }
    yield dg.Output(
        {
            "generation": generation,
            # The generation is the dataset version until `splits` names the reviewed one.
            "dataset_version": generation,
            "chunks_key": f"{prefix}/chunks.jsonl",
            "examples_key": f"{prefix}/examples.jsonl",
            "documents": [
                {
                    "id": d["id"],
                    "filename": d["filename"],
                    "sha256": d["sha256"],
                    "type": types[d["id"]],
                    "split": assignment[d["id"]],
                }
                for d in docs
            ],
            "counts": {"chunks": len(chunks), "examples": len(rows), **dict(kinds)},
            "statuses": dict(statuses),
            "generator": generator_info,
            "chunker": CHUNKER_VERSION,
            "scorer": SCORER_VERSION,
            "tainted_chunks": len(tainted),
        },
        metadata={
            "generation": generation,
            "chunks": len(chunks),
            "examples": len(rows),
            "by_kind": dict(kinds),
            "by_status": dict(statuses),
            "pending_review": statuses["pending"],
            "generators": ", ".join(g.name for g in generators),
            "chunks_key": handle.store.key(f"{prefix}/chunks.jsonl"),
            "preview": dg.MetadataValue.md(
                "| kind | status | question | answer |\n|---|---|---|---|\n" + preview
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_unredacted_pii",
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=pii_summary(residual)
        + (f"; {routed} example(s) sent to review" if residual and not failed else ""),
        metadata={
            "policy": policy,
            "residual_mode": config["pii_residual"],
            "residual_findings": len(residual),
            "routed_to_review": routed,
            "findings": dg.MetadataValue.json([f.to_dict() for f in residual[:MAX_REPORTED]]),
        },
    )


def rows_for_export(rows: list[dict]) -> list[dict]:
    return [export_row({**r, "id": r["key"]}) for r in rows]


def dataset_rows(rows: list[Any]) -> list[dict[str, Any]]:
    """Database rows as plain dicts (what the split files hold)."""
    return [
        {
            "id": r.key,
            "row_id": r.id,
            "document_id": r.document_id,
            "split": r.split,
            "kind": r.kind,
            "generator": r.generator,
            "question": r.question,
            "answer": r.answer,
            "messages": r.messages,
            "citations": r.citations,
            "context": r.context,
            "scores": r.scores,
            "status": r.status,
            "review_reason": r.review_reason,
        }
        for r in rows
    ]


def review_pending(handle: ProjectHandle, rows: list[dict]) -> StageFailure:
    """The `wait` review policy with a non-empty queue: which examples, and what to do."""
    pending = [r for r in rows if r["status"] == "pending"]
    shown = ", ".join(f"{r['row_id']} ({(r['question'] or '')[:60]!r})" for r in pending[:3])
    more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    return StageFailure(
        "splits",
        f"{len(pending)} example(s) wait for review and the project's review_policy is `wait`, "
        f"so no dataset version is written: {shown}{more}",
        f"review them (GET /v1/projects/{handle.project}/review, then POST "
        f"/v1/projects/{handle.project}/review/{{example_id}}/approve, /edit or /reject), or "
        f"set review_policy to `auto` (PATCH /v1/projects/{handle.project}); then run again",
        code="review_pending",
        details={
            "pending_review": len(pending),
            "example_ids": [r["row_id"] for r in pending[:50]],
        },
    )


def gold_leak_failure(handle: ProjectHandle, leaks: list[Any], rows: list[dict]) -> StageFailure:
    """The no_gold_leak check's failure: the training examples that repeat a gold question or
    show a gold passage, by the ids the review API takes."""
    by_key = {r["id"]: r for r in rows}
    leaky: dict[str, dict] = {}
    for leak in leaks:
        if leak.kind == "question" and leak.train in by_key:
            leaky.setdefault(leak.train, by_key[leak.train])
        elif leak.kind == "context":
            for r in rows:
                if r["split"] == "train" and leak.train in (r["context"] or []):
                    leaky.setdefault(r["id"], r)
    shown = "; ".join(
        f"{r['row_id']} ({(r['question'] or '')[:60]!r})" for r in list(leaky.values())[:3]
    )
    questions = sum(1 for leak in leaks if leak.kind == "question")
    kinds = [
        f"{n} training {what} repeat(s) a gold (evaluation) one"
        for n, what in ((questions, "question(s)"), (len(leaks) - questions, "passage(s)"))
        if n
    ]
    return StageFailure(
        "splits",
        f"{len(leaks)} gold leak(s): {' and '.join(kinds)}, so the evaluation would measure "
        "memory, not answers; the adapter is not trained on this version. Training examples "
        f"involved: {shown or 'see details'}",
        f"edit or reject those training examples (POST /v1/projects/{handle.project}/review/"
        "{example_id}/edit or /reject), then run again",
        code="gold_leak",
        details={
            "question_leaks": questions,
            "context_leaks": len(leaks) - questions,
            "example_ids": [r["row_id"] for r in leaky.values()][:50],
            "leaks": [leak.to_dict() for leak in leaks[:20]],
        },
    )


def reviewed_version(generation: str, selected: list[dict], policy: dict) -> str:
    """A new version whenever what training reads changes (review decisions included)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([generation, policy], sort_keys=True).encode())
    for r in sorted(selected, key=lambda r: r["id"]):
        digest.update(json.dumps([r["id"], r["split"], r["messages"]]).encode())
    return digest.hexdigest()[:12]


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
        dg.AssetCheckSpec(
            "no_gold_leak",
            asset="splits",
            blocking=True,
            description="No gold question or passage is a near-duplicate of a training one.",
        ),
    ],
)
def splits(
    context: AssetExecutionContext, db: Database, store: ObjectStoreResource, examples: dict
):
    """The dataset version training reads: reviewed examples by split (train / validation / gold, no document in two), JSONL (chat) and Parquet, with a manifest."""
    handle = project_handle(context, db, store)
    config = dataset_settings(handle.settings)
    generation = examples.get("generation") or examples["dataset_version"]
    with stage(context, handle, "splits") as figures:
        with handle.scope() as scope:
            rows = dataset_rows(list(scope.examples(handle.project_id, generation)))
        statuses = Counter(r["status"] for r in rows)
        selection = select_for_training(
            rows, config["review_policy"], config["auto_accept_threshold"]
        )
        if selection.blocked:
            raise review_pending(handle, rows)
        policy = {
            "review_policy": config["review_policy"],
            "auto_accept_threshold": config["auto_accept_threshold"],
        }
        selected = selection.selected
        version = reviewed_version(generation, selected, policy)
        prefix = f"datasets/{version}"
        by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for row in selected:
            by_split[row["split"]].append(row)
        chunks = {
            c["id"]: c["text"] for c in from_jsonl(handle.store.get_bytes(examples["chunks_key"]))
        }
        shown = {
            s: {cid: chunks[cid] for r in by_split[s] for cid in r["context"] if cid in chunks}
            for s in SPLITS
        }
        leaks = question_leaks(by_split["gold"], by_split["train"]) + context_leaks(
            shown["gold"], shown["train"]
        )
        files: dict[str, dict[str, Any]] = {}
        for name, items in by_split.items():
            items.sort(key=lambda r: r["id"])
            exported = [export_row(r) for r in items]
            jsonl = to_jsonl(exported)
            parquet = to_parquet(exported)
            handle.store.put_bytes(f"{prefix}/{name}.jsonl", jsonl)
            handle.store.put_bytes(f"{prefix}/{name}.parquet", parquet)
            files[name] = {
                "key": f"{prefix}/{name}.jsonl",
                "parquet_key": f"{prefix}/{name}.parquet",
                "sha256": sha256_bytes(jsonl),
                "parquet_sha256": sha256_bytes(parquet),
                "examples": len(items),
                "by_kind": dict(Counter(r["kind"] for r in items)),
                "documents": sorted({r["document_id"] for r in items if r["document_id"]}),
            }
        all_rows = to_jsonl([export_row(r) for r in sorted(rows, key=lambda r: r["id"])])
        handle.store.put_bytes(f"{prefix}/examples.jsonl", all_rows)
        manifest = {
            "dataset_version": version,
            "generation": generation,
            "splits": files,
            "counts": {
                s: {"examples": files[s]["examples"], **files[s]["by_kind"]} for s in SPLITS
            },
            "review": {"policy": policy, "statuses": dict(statuses), "selected": len(selected)},
            "leaks": [leak.to_dict() for leak in leaks[:50]],
            "chunks_key": examples["chunks_key"],
            "examples_key": f"{prefix}/examples.jsonl",
            "examples_sha256": sha256_bytes(all_rows),
            "generator": examples["generator"],
            "chunker": examples["chunker"],
            "scorer": examples.get("scorer"),
            "source_documents": examples["documents"],
            "dagster_run_id": context.run.run_id,
        }
        handle.store.put_json(f"{prefix}/manifest.json", manifest)
        with handle.scope() as scope:
            scope.save_dataset_version(
                handle.project_id,
                version,
                generation,
                manifest_key=f"{prefix}/manifest.json",
                manifest=manifest,
                dagster_run_id=context.run.run_id,
            )
        figures.update({s: files[s]["examples"] for s in SPLITS}, dataset_version=version)
    docs_per_split = {s: set(files[s]["documents"]) for s in SPLITS}
    seen: Counter[str] = Counter(d for docs in docs_per_split.values() for d in docs)
    crossing = [d for d, n in seen.items() if n > 1]
    yield dg.Output(
        manifest,
        metadata={
            "dataset_version": version,
            "generation": generation,
            **{f"{s}_examples": files[s]["examples"] for s in SPLITS},
            **{f"{s}_documents": len(files[s]["documents"]) for s in SPLITS},
            "pending_review": statuses["pending"],
            "manifest_key": handle.store.key(f"{prefix}/manifest.json"),
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
    if leaks:
        record_check_failure(
            handle, context, "no_gold_leak", gold_leak_failure(handle, leaks, rows)
        )
    yield dg.AssetCheckResult(
        check_name="no_gold_leak",
        passed=not leaks,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "question_leaks": sum(1 for leak in leaks if leak.kind == "question"),
            "context_leaks": sum(1 for leak in leaks if leak.kind == "context"),
            "examples": dg.MetadataValue.json([leak.to_dict() for leak in leaks[:10]]),
        },
    )
