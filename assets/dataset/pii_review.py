"""Personal data left after redaction, found again in what the dataset is made of (chunks, and
the questions and answers generated from them), and what happens to it.

Screening redacts documents paragraph by paragraph until a fresh analysis finds nothing; text
written afterwards (a question built around a line, a chunk cut inside a long paragraph) can
still show a name the recogniser now sees in its new context. Each such finding is reported
with its entity type, the example and document it is in and a masked snippet, so a person can
act on it. By the project's `pii_residual` setting the run then either sends the examples
concerned to the review queue (`review`, the default: they stay out of training until someone
approves or edits them, and the finding is redacted in the chunk) or fails (`fail`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from assets.dataset.chunking import Chunk
from assets.dataset.generate import Example
from assets.privacy.screening import paragraphs
from resources.project_settings import DEFAULT_RESIDUAL_MODE as DEFAULT_RESIDUAL_MODE
from resources.project_settings import RESIDUAL_MODES as RESIDUAL_MODES

REVIEW_REASON = "pii_residual"
MAX_REPORTED = 50


@dataclass(frozen=True)
class ResidualFinding:
    entity_type: str
    where: str  # chunk | question | answer
    snippet: str  # masked: "...contact J*** S**** at ..."
    document_id: str | None
    filename: str | None
    chunk_id: str | None
    example_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _units(text: str) -> list[tuple[int, str]]:
    """(offset, paragraph) of a text, in the units screening analysed."""
    out, offset = [], 0
    for i, part in enumerate(paragraphs(text)):
        if i % 2 == 0 and part.strip():
            out.append((offset, part))
        offset += len(part)
    return out


def find_residual(
    chunks: Sequence[Chunk], examples: Sequence[Example], screener: Any
) -> tuple[list[ResidualFinding], dict[str, list[Any]]]:
    """Findings left in chunks (per paragraph) and in examples' questions and answers; and
    per chunk id the findings with offsets in the chunk's text (to redact them)."""
    from assets.pii.screen import Finding, masked_snippet, residual_findings

    names = {c.id: c.filename for c in chunks}
    texts: list[str] = []
    origins: list[tuple[str, str, int, Chunk | Example]] = []
    for chunk in chunks:
        for offset, unit in _units(chunk.text):
            texts.append(unit)
            origins.append(("chunk", chunk.id, offset, chunk))
    for example in examples:
        for where in ("question", "answer"):
            texts.append(getattr(example, where))
            origins.append((where, example.id, 0, example))
    found: list[ResidualFinding] = []
    in_chunks: dict[str, list[Any]] = {}
    for text, findings, (where, key, offset, item) in zip(
        texts, residual_findings(texts, screener), origins, strict=True
    ):
        for finding in findings:
            snippet = masked_snippet(text, finding, findings)
            if isinstance(item, Chunk):
                in_chunks.setdefault(key, []).append(
                    Finding(
                        finding.entity_type,
                        finding.start + offset,
                        finding.end + offset,
                        finding.score,
                    )
                )
                found.append(
                    ResidualFinding(
                        finding.entity_type, where, snippet, item.document_id, item.filename, key
                    )
                )
            else:
                found.append(
                    ResidualFinding(
                        finding.entity_type,
                        where,
                        snippet,
                        item.document_id,
                        names.get(item.chunk_id),
                        item.chunk_id or None,
                        key,
                    )
                )
    return found, in_chunks


def redact_chunks(
    chunks: list[Chunk], in_chunks: dict[str, list[Any]], screener: Any
) -> list[Chunk]:
    """Chunks with their residual findings replaced by typed placeholders (the chunk's span
    still names where in the page its text comes from)."""
    if not in_chunks:
        return chunks
    return [
        replace(c, text=screener.redact(c.text, in_chunks[c.id])) if c.id in in_chunks else c
        for c in chunks
    ]


def route_to_review(
    examples: Sequence[Example], found: Sequence[ResidualFinding]
) -> tuple[list[Example], int]:
    """Examples that hold a residual finding, cite a chunk that held one or show it in their
    context, sent to the review queue (reason `pii_residual`); and how many were."""
    by_example: dict[str, list[ResidualFinding]] = {}
    by_chunk: dict[str, list[ResidualFinding]] = {}
    for f in found:
        if f.example_id:
            by_example.setdefault(f.example_id, []).append(f)
        elif f.chunk_id:
            by_chunk.setdefault(f.chunk_id, []).append(f)
    out, routed = [], 0
    for e in examples:
        concerned = by_example.get(e.id, []) + [
            f for chunk_id in {e.chunk_id, *e.context} for f in by_chunk.get(chunk_id, [])
        ]
        if concerned and e.status != "merged":
            # The reviewer sees what was found (masked) with the example.
            findings = [
                {"entity_type": f.entity_type, "where": f.where, "snippet": f.snippet}
                for f in concerned[:5]
            ]
            out.append(
                replace(
                    e,
                    status="pending",
                    review_reason=REVIEW_REASON,
                    scores={**e.scores, "pii_findings": findings},
                )
            )
            routed += 1
        else:
            out.append(e)
    return out, routed


def summary(found: Sequence[ResidualFinding]) -> str:
    """ "3 findings: PERSON x2 in answer of example 1a2b (git-log.html: "...J*** S****...")"."""
    if not found:
        return "no personal data left"
    first = found[0]
    where = f"{first.where} of example {first.example_id}" if first.example_id else "a chunk"
    kinds: dict[str, int] = {}
    for f in found:
        kinds[f.entity_type] = kinds.get(f.entity_type, 0) + 1
    types = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
    return (
        f"{len(found)} personal-data finding(s) left after redaction ({types}); first in {where} "
        f"({first.filename or 'unknown document'}): {first.snippet!r}"
    )
