"""eval_report: the base model and the new adapter on the frozen gold split."""

import time

import dagster as dg
from dagster import AssetExecutionContext

from assets.dataset.assets import from_jsonl
from assets.dataset.prompt import DEFAULT_SYSTEM_PROMPT
from assets.deployment.artifacts import local_adapter_dir
from assets.evaluation.report import render_html, score, summarize
from assets.project import project_handle, stage
from assets.retrieval.grounding import GroundingIndex, grounded_messages
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.settings import get_settings


class EvalConfig(dg.Config):
    """Evaluation knobs."""

    max_questions: int | None = None
    max_new_tokens: int = 64
    top_k: int = 3


@dg.asset(partitions_def=tenant_project, group_name="evaluation", kinds={"pytorch"})
def eval_report(
    context: AssetExecutionContext,
    config: EvalConfig,
    db: Database,
    store: ObjectStoreResource,
    runtime: ModelRuntime,
    splits: dict,
    adapter: dict,
) -> dict:
    """Base model vs the new adapter on the gold split, both grounded on retrieved chunks: exact and fuzzy match, JSON + HTML."""
    handle = project_handle(context, db, store)
    limit = (
        config.max_questions
        if config.max_questions is not None
        else get_settings().eval_max_questions
    )
    system_prompt = handle.settings.get("system_prompt") or DEFAULT_SYSTEM_PROMPT
    prefix = f"reports/{adapter['adapter_version']}"
    with stage(context, handle, "eval_report") as figures:
        gold = from_jsonl(handle.store.get_bytes(splits["splits"]["gold"]["key"]))
        gold.sort(key=lambda r: r["id"])
        if limit:
            gold = gold[:limit]
        index = GroundingIndex(from_jsonl(handle.store.get_bytes(splits["chunks_key"])))
        retrieved = [index.retrieve(r["question"], config.top_k) for r in gold]
        conversations = [
            grounded_messages(r["question"], h, system_prompt)
            for r, h in zip(gold, retrieved, strict=True)
        ]
        engine = runtime.engine()
        adapter_dir = local_adapter_dir(
            handle.store, adapter, get_settings().home / "cache" / "adapters"
        )
        timings = {}
        answers = {}
        for name, path in (("base", None), ("adapter", adapter_dir)):
            started = time.perf_counter()
            answers[name] = engine.generate(
                conversations, path, max_new_tokens=config.max_new_tokens
            )
            timings[name] = time.perf_counter() - started
        rows = []
        for i, example in enumerate(gold):
            rows.append(
                {
                    "id": example["id"],
                    "question": example["question"],
                    "reference": example["answer"],
                    "document_id": example["document_id"],
                    "retrieved_documents": [h.chunk["document_id"] for h in retrieved[i]],
                    "base": score(answers["base"][i].text, example["answer"]),
                    "adapter": score(answers["adapter"][i].text, example["answer"]),
                }
            )
        rows.sort(key=lambda r: (r["adapter"]["fuzzy_match"], r["id"]))
        summary = summarize(rows, ["base", "adapter"])
        for name in ("base", "adapter"):
            tokens = sum(g.completion_tokens for g in answers[name])
            summary[name]["tokens_per_second"] = tokens / timings[name] if timings[name] else 0.0
        recall = (
            sum(r["document_id"] in r["retrieved_documents"] for r in rows) / len(rows)
            if rows
            else 0.0
        )
        report = {
            "tenant": handle.tenant,
            "project": handle.project,
            "adapter_version": adapter["adapter_version"],
            "base_model": adapter["base_model"],
            "dataset_version": splits["dataset_version"],
            "questions": len(rows),
            "retrieval_recall": recall,
            "summary": summary,
            "rows": rows,
        }
        handle.store.put_json(f"{prefix}/report.json", report)
        handle.store.put_text(f"{prefix}/report.html", render_html(report))
        figures.update(
            questions=len(rows),
            base_fuzzy=round(summary["base"]["fuzzy_match"], 3),
            adapter_fuzzy=round(summary["adapter"]["fuzzy_match"], 3),
        )
    context.add_output_metadata(
        {
            "questions": len(rows),
            "retrieval_recall": round(recall, 3),
            **{f"{m}_{k}": round(v, 3) for m, s in summary.items() for k, v in s.items()},
            "report_html": handle.store.key(f"{prefix}/report.html"),
        }
    )
    return {
        "report_key": f"{prefix}/report.json",
        "html_key": f"{prefix}/report.html",
        "adapter_version": adapter["adapter_version"],
        "questions": len(rows),
        "summary": summary,
        "retrieval_recall": recall,
    }
