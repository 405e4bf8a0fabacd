"""Evaluate several systems (base model, candidate adapter, active deployment) on the same
questions through the same retrieval index: answers, scores, latency, summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from assets.dataset.assets import from_jsonl
from assets.evaluation.report import latency, score_rows, summarize
from assets.retrieval.answering import Answering, answer_all
from resources.object_store import ProjectStore


@dataclass(frozen=True)
class System:
    name: str
    adapter: Any  # AdapterRef, or None for the bare base model
    label: str  # what it is, for the report


def eval_questions(
    store: ProjectStore, splits: dict, max_questions: int | None, refusal_questions: int
) -> list[dict]:
    """The frozen gold split's answerable questions, then refusal and escalation probes from the
    validation split (refusal examples never enter gold; validation is never trained on)."""
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
        }
        for r in gold
    ]
    if refusal_questions and "validation" in splits["splits"]:
        validation = from_jsonl(store.get_bytes(splits["splits"]["validation"]["key"]))
        probes = sorted(
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
            }
            for r in probes
        ]
    return questions


def evaluate(
    runtime: Any,
    answering: Answering,
    questions: list[dict],
    systems: list[System],
    settings: dict,
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
    answerable = [(q, p) for q, p in zip(questions, prepared, strict=True) if q["kind"] == "answer"]
    recall = (
        sum(
            q["document_id"] in {h.chunk["document_id"] for h in p.retrieved} for q, p in answerable
        )
        / len(answerable)
        if answerable
        else 0.0
    )
    return {"rows": rows, "summary": summary, "retrieval_recall": recall}
