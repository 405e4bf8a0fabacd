"""Screening texts in the units the dataset is built from (paragraphs), until clean.

Named-entity recognition depends on context: a name missed in a long page can be found in a
chunk made of a few of its paragraphs, or in an answer built from one line. Screening each
paragraph on its own, the same unit chunks are made of, and repeating redaction until a
fresh analysis finds nothing, makes what flows on stable under the check that re-analyses it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Presidio (and, through it, transformers) is imported only when screening runs.
    from assets.pii.screen import PiiScreener

_PARAGRAPH_BREAK = re.compile(r"(\n\s*\n)")
MAX_PASSES = 3


@dataclass
class Screened:
    text: str
    status: str
    summary: dict[str, int] = field(default_factory=dict)


def paragraphs(text: str) -> list[str]:
    """The text cut at blank lines, separators kept, so "".join(parts) == text."""
    return _PARAGRAPH_BREAK.split(text)


def screen_texts(texts: Sequence[str], policy: str, screener: PiiScreener) -> list[Screened]:
    """Apply the policy to each text, paragraph by paragraph; under `redact`, analyse the
    redacted paragraphs again (at most MAX_PASSES times) until nothing more is found."""
    if not texts:
        return []
    from assets.pii.screen import apply_policy

    units: list[tuple[int, int, str]] = []  # (text index, part index, paragraph)
    parts_of: list[list[str]] = []
    for t, text in enumerate(texts):
        parts = paragraphs(text)
        parts_of.append(parts)
        units.extend((t, p, part) for p, part in enumerate(parts) if part.strip() and p % 2 == 0)
    statuses: list[set[str]] = [set() for _ in texts]
    summaries: list[Counter[str]] = [Counter() for _ in texts]
    pending = units
    for _ in range(MAX_PASSES):
        if not pending:
            break
        findings = screener.analyze_many([u[2] for u in pending])
        again = []
        for (t, p, part), found in zip(pending, findings, strict=True):
            outcome = apply_policy(policy, part, found, screener)
            parts_of[t][p] = outcome.text
            statuses[t].add(outcome.status)
            summaries[t].update(outcome.summary)
            if policy == "redact" and outcome.status == "redacted":
                again.append((t, p, outcome.text))
        pending = again
    results = []
    for t in range(len(texts)):
        status = next((s for s in ("blocked", "redacted", "allowed") if s in statuses[t]), "clean")
        results.append(Screened("".join(parts_of[t]), status, dict(summaries[t])))
    return results


def residual_in_paragraphs(texts: Sequence[str], screener: PiiScreener) -> int:
    """PII findings left in texts, analysed in the same paragraph units they were screened in."""
    from assets.pii.screen import residual_pii

    units = [
        part
        for text in texts
        for i, part in enumerate(paragraphs(text))
        if i % 2 == 0 and part.strip()
    ]
    return residual_pii(units, screener)
