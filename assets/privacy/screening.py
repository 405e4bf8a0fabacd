"""Screening texts in the units the dataset is built from (paragraphs), until clean.

Named-entity recognition depends on context: a name missed in a long page can be found in a
chunk made of a few of its paragraphs, or in an answer built from one line. Screening each
paragraph on its own, the same unit chunks are made of, and repeating redaction until a
fresh analysis finds nothing, makes what flows on stable under the check that re-analyses it."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets.pii.recognizers import CustomRecognizer

if TYPE_CHECKING:  # Presidio (and, through it, transformers) is imported only when screening runs.
    from assets.pii.screen import PiiScreener

_PARAGRAPH_BREAK = re.compile(r"(\n\s*\n)")
MAX_PASSES = 3
# Changes whenever the screener's own rules change what is found (precision rules, recognisers),
# so that documents screened before are screened again; part of the screening version hash.
SCREENING_RULES_VERSION = "rules-2026-12-1"


@dataclass(frozen=True)
class ScreeningConfig:
    """A project's screening configuration (`assets.privacy.assets.screening_config`)."""

    policy: str
    custom: tuple[CustomRecognizer, ...] = ()
    version: str = ""
    allow_terms: tuple[str, ...] = ()
    entities: tuple[str, ...] | None = None  # None: the screener's defaults

    def screener(self) -> PiiScreener:
        """A PiiScreener for this configuration (shared per configuration in this process)."""
        return screener_for(self.custom, self.allow_terms, self.entities)


_SCREENERS: dict[tuple, PiiScreener] = {}
_SCREENERS_LOCK = threading.Lock()


def screener_for(
    custom: Sequence[CustomRecognizer] = (),
    allow_terms: Sequence[str] = (),
    entities: Sequence[str] | None = None,
) -> PiiScreener:
    """The PiiScreener for a configuration, built once per process (Presidio loads on first
    use)."""
    from assets.pii.screen import PiiScreener

    key = (tuple(custom), tuple(allow_terms), None if entities is None else tuple(entities))
    with _SCREENERS_LOCK:
        screener = _SCREENERS.get(key)
        if screener is None:
            screener = PiiScreener(custom=custom, allow_terms=allow_terms, entities=entities)
            _SCREENERS[key] = screener
        return screener


@dataclass
class Screened:
    text: str
    status: str
    summary: dict[str, int] = field(default_factory=dict)


def paragraphs(text: str) -> list[str]:
    """The text cut at blank lines, separators kept, so "".join(parts) == text."""
    return _PARAGRAPH_BREAK.split(text)


def screen_texts(
    texts: Sequence[str],
    policy: str,
    screener: PiiScreener | None = None,
    *,
    custom: Sequence[CustomRecognizer] = (),
    allow_terms: Sequence[str] = (),
    entities: Sequence[str] | None = None,
) -> list[Screened]:
    """Apply the policy to each text, paragraph by paragraph; under `redact`, analyse the
    redacted paragraphs again (at most MAX_PASSES times) until nothing more is found.

    `screener` does the analysis; without one, the screener of `custom`, `allow_terms` and
    `entities` (see PiiScreener) does. Passing both a screener and any of those is an error."""
    if screener is not None and (custom or allow_terms or entities is not None):
        raise ValueError("pass either a screener or its configuration, not both")
    if not texts:
        return []
    from assets.pii.screen import apply_policy

    if screener is None:
        screener = screener_for(custom, allow_terms, entities)

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
