"""Grounding: retrieve a project's chunks for a question and build the prompt the adapter was
trained on, with the citations to return. Shared by evaluation and serving."""

from __future__ import annotations

from dataclasses import dataclass

from assets.dataset.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    ContextPassage,
    build_messages,
    passage_label,
)
from assets.retrieval.lexical import BM25Index


@dataclass(frozen=True)
class Retrieved:
    chunk: dict
    score: float

    def citation(self) -> dict:
        c = self.chunk
        return {
            "document_id": c["document_id"],
            "filename": c["filename"],
            "page": c["page"],
            "start": c["start"],
            "end": c["end"],
            "chunk_id": c["id"],
            "score": round(self.score, 4),
        }


class GroundingIndex:
    def __init__(self, chunks: list[dict]) -> None:
        self.chunks = chunks
        self.index = BM25Index([" ".join(c.get("heading", [])) + "\n" + c["text"] for c in chunks])

    def retrieve(self, question: str, k: int = 3, min_score: float = 0.0) -> list[Retrieved]:
        return [
            Retrieved(self.chunks[h.index], h.score)
            for h in self.index.search(question, k)
            if h.score > min_score
        ]


def grounded_messages(
    question: str, retrieved: list[Retrieved], system_prompt: str = DEFAULT_SYSTEM_PROMPT
) -> list[dict[str, str]]:
    passages = [
        ContextPassage(passage_label(r.chunk["filename"], r.chunk["page"]), r.chunk["text"])
        for r in retrieved
    ]
    return build_messages(question, passages, system_prompt)
