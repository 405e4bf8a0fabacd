"""One grounded answer, the same way in evaluation and in serving: retrieve the project's chunks,
refuse with the project's text when retrieval is not confident enough, otherwise build the
prompt the adapter was trained on and generate, citing the retrieved passages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from assets.dataset.prompt import DEFAULT_REFUSAL, DEFAULT_SYSTEM_PROMPT
from assets.retrieval.grounding import GroundingIndex, Retrieved, grounded_messages

TOP_K = 3


@dataclass(frozen=True)
class Prepared:
    question: str
    messages: list[dict[str, str]]
    refusal: str | None  # low retrieval confidence: this text instead of a generation
    retrieved: list[Retrieved]
    confidence: float
    citations: list[dict] = field(default_factory=list)

    @property
    def contexts(self) -> list[str]:
        return [r.chunk["text"] for r in self.retrieved]


@dataclass(frozen=True)
class Answering:
    """A project's retrieval index and its answering settings."""

    index: Any  # HybridIndex or GroundingIndex
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    refusal_text: str = DEFAULT_REFUSAL
    min_confidence: float | None = None  # None: the index's calibrated default
    top_k: int = TOP_K

    @classmethod
    def for_project(cls, index: Any, settings: dict, top_k: int = TOP_K) -> Answering:
        configured = settings.get("retrieval_min_confidence")
        return cls(
            index=index,
            system_prompt=settings.get("system_prompt") or DEFAULT_SYSTEM_PROMPT,
            refusal_text=settings.get("refusal_text") or DEFAULT_REFUSAL,
            min_confidence=float(configured) if configured is not None else None,
            top_k=top_k,
        )

    def threshold(self) -> float:
        if self.min_confidence is not None:
            return self.min_confidence
        from assets.retrieval.hybrid import CONFIDENCE_THRESHOLD, HybridIndex

        return CONFIDENCE_THRESHOLD if isinstance(self.index, HybridIndex) else 0.0

    def prepare(self, question: str) -> Prepared:
        hits = self.index.retrieve(question, self.top_k)
        if isinstance(self.index, GroundingIndex):  # lexical only: any hit is enough
            confidence = 1.0 if hits else 0.0
        else:
            confidence = float(self.index.confidence(hits))
        if not hits or confidence < self.threshold():
            return Prepared(question, [], self.refusal_text, [], confidence)
        return Prepared(
            question,
            grounded_messages(question, hits, self.system_prompt),
            None,
            hits,
            confidence,
            [h.citation() for h in hits],
        )


@dataclass(frozen=True)
class Answered:
    prepared: Prepared
    text: str
    prompt_tokens: int
    completion_tokens: int


def answer_all(
    runtime: Any, adapter: Any, prepared: list[Prepared], max_new_tokens: int
) -> tuple[list[Answered], float]:
    """Answers for prepared questions (refusals as they are, the rest generated in one batch
    through the runtime), and the seconds generation took."""
    to_generate = [p for p in prepared if p.refusal is None]
    started = time.perf_counter()
    generations = (
        runtime.generate([p.messages for p in to_generate], adapter, max_new_tokens)
        if to_generate
        else []
    )
    seconds = time.perf_counter() - started
    made = iter(generations)
    out = []
    for p in prepared:
        if p.refusal is not None:
            out.append(Answered(p, p.refusal, 0, 0))
        else:
            g = next(made)
            out.append(Answered(p, g.text, g.prompt_tokens, g.completion_tokens))
    return out, seconds
