"""Evaluate several systems (base model, candidate adapter, active deployment) on the same
questions through the same retrieval index: answers, scores, latency, summary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assets.dataset.assets import from_jsonl
from assets.evaluation.probes import probe_questions
from assets.evaluation.report import latency, score_rows, summarize, summarize_sets
from assets.retrieval.answering import Answering, answer_all
from resources.object_store import ProjectStore
from resources.project_settings import ProjectSettings


@dataclass(frozen=True)
class System:
    name: str
    adapter: Any  # AdapterRef, or None for the bare base model
    label: str  # what it is, for the report


def eval_questions(
    store: ProjectStore,
    splits: dict,
    max_questions: int | None,
    refusal_questions: int,
    project_set: Sequence[dict] = (),
    documents: dict[str, str] | None = None,
    probes: int = 0,
    seed: int = 0,
) -> list[dict]:
    """Every question an evaluation asks, each with its `source`:

    - `generated`: the frozen gold split's answerable questions (written by the generator from
      documents never trained on), and refusal/escalation probes from the validation split
      (refusal examples never enter gold; validation is never trained on);
    - `project`: the project's own evaluation set (`project_set`: question, answer, document,
      expect), its document names resolved through `documents` (file name -> id);
    - `builtin`: `probes` of the built-in off-topic questions (assets/evaluation/probes.py)."""
    gold = from_jsonl(store.get_bytes(splits["splits"]["gold"]["key"]))
    gold = sorted(
        (r for r in gold if r.get("kind", "answer") not in ("refusal", "escalation")),
        key=lambda r: r["id"],
    )
    if max_questions:
        gold = gold[:max_questions]
    questions = [
        {
            "id": r["id"],
            "kind": "answer",
            "question": r["question"],
            "reference": r["answer"],
            "document_id": r["document_id"],
            "source": "generated",
        }
        for r in gold
    ]
    if refusal_questions and "validation" in splits["splits"]:
        validation = from_jsonl(store.get_bytes(splits["splits"]["validation"]["key"]))
        probed = sorted(
            (r for r in validation if r.get("kind") in ("refusal", "escalation")),
            key=lambda r: r["id"],
        )[:refusal_questions]
        questions += [
            {
                "id": r["id"],
                "kind": r["kind"],
                "question": r["question"],
                "reference": r["answer"],
                "document_id": None,
                "source": "generated",
            }
            for r in probed
        ]
    names = documents or {}
    for i, q in enumerate(project_set):
        answerable = q["expect"] == "answer"
        questions.append(
            {
                "id": f"project-{i}",
                "kind": "answer" if answerable else "refusal",
                "question": q["question"],
                "reference": (q.get("answer") or "") if answerable else "",
                "document_id": names.get(q.get("document") or "") if answerable else None,
                "source": "project",
            }
        )
    questions += probe_questions(probes, seed)
    return questions


def evaluate(
    runtime: Any,
    answering: Answering,
    questions: list[dict],
    systems: list[System],
    settings: ProjectSettings,
    max_new_tokens: int,
    latency_samples: int,
) -> dict[str, Any]:
    """Rows (scores per question and system), summary per system (quality, latency, tokens/s)
    and retrieval recall."""
    prepared = [answering.prepare(q["question"]) for q in questions]
    answers: dict[str, list[Any]] = {}
    speed: dict[str, float] = {}
    refusal_texts = [answering.refusal_text, answering.escalation_text]
    for system in systems:
        answered, seconds = answer_all(
            runtime, system.adapter, prepared, max_new_tokens, refusal_texts
        )
        answers[system.name] = answered
        tokens = sum(a.completion_tokens for a in answered)
        speed[system.name] = tokens / seconds if seconds > 0 else 0.0
    rows = score_rows(questions, answers, refusal_texts)
    summary = summarize(rows, [s.name for s in systems])
    # Latency: a few grounded answers one at a time (concurrency 1), streamed for first token.
    sample = [p for p in prepared if p.refusal is None][:latency_samples]
    for system in systems:
        first, totals, counts = [], [], []
        for p in sample:
            started = time.perf_counter()
            first_at = None
            text = []
            for piece in runtime.stream(p.messages, system.adapter, max_new_tokens):
                if first_at is None:
                    first_at = time.perf_counter() - started
                text.append(piece)
            totals.append(time.perf_counter() - started)
            first.append(first_at if first_at is not None else totals[-1])
            counts.append(
                len(runtime.tokenizer("".join(text), add_special_tokens=False)["input_ids"])
            )
        summary[system.name].update(latency(first, totals, counts))
        summary[system.name]["tokens_per_second"] = round(speed[system.name], 2)
    answerable = [
        (q, p)
        for q, p in zip(questions, prepared, strict=True)
        if q["kind"] == "answer" and q.get("document_id")
    ]
    recall = (
        sum(
            q["document_id"] in {h.chunk["document_id"] for h in p.retrieved} for q, p in answerable
        )
        / len(answerable)
        if answerable
        else 0.0
    )
    return {
        "rows": rows,
        "summary": summary,
        "summary_by_set": summarize_sets(rows, [s.name for s in systems]),
        "retrieval_recall": recall,
    }
