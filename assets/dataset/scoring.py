"""Example scores (groundedness, answer length, question quality, duplication) and the review
routing that follows from them. Every score is stored with its example."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

from rapidfuzz import fuzz

from assets.dataset.generate import Example

SCORER_VERSION = "score-v1"
SYNTHETIC_KINDS = frozenset({"refusal", "escalation"})
_WORD = re.compile(r"[a-z0-9]+(?:[.,:/'-][a-z0-9]+)*")
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it
    its this that these those there here what which who whom whose when where why how do does did
    done can could should would will shall may might must not no yes you your yours i we our us
    they them their he she his her him my me so than then too very also any all each per into out
    up down over under about after before between during within without through has have had
    having just only own same such more most other some says say said state states stated""".split()
)
_QUESTION_START = re.compile(
    r"^(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
    r"should|would|will|may|must|has|have|had|in|on|for|under|according)\b",
    re.I,
)
# Answers between these word counts score 1; shorter or longer ones score less.
SHORTEST, LONGEST = 2, 80
QUESTION_DUPLICATE = 90.0
ANSWER_DUPLICATE = 0.9


def content_words(text: str) -> list[str]:
    """Lowercased words and numbers that carry content (no stopwords)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def normalise_question(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def groundedness(answer: str, source: str) -> float:
    """The share of the answer's content words found in the source chunk (numbers included), so an
    answer the chunk does not support scores low."""
    words = content_words(answer)
    if not words:
        return 0.0
    vocabulary = set(content_words(source))
    return sum(w in vocabulary for w in words) / len(words)


def answer_length_score(answer: str) -> float:
    n = len(answer.split())
    if n == 0:
        return 0.0
    if n < SHORTEST:
        return 0.5
    if n <= LONGEST:
        return 1.0
    return max(0.0, 1.0 - (n - LONGEST) / LONGEST)


def question_quality(question: str, answer: str) -> float:
    """A well-formed question: ends with '?', opens like a question, 3 to 40 words, has content
    of its own and does not simply contain its answer."""
    q = question.strip()
    words = q.split()
    score = 0.0
    score += 0.3 if q.endswith("?") else 0.0
    score += 0.2 if _QUESTION_START.match(q) else 0.0
    score += 0.2 if 3 <= len(words) <= 40 else 0.0
    # Redaction placeholders make a question ambiguous ("the city for office <PERSON>").
    score += 0.1 if content_words(q) and "<" not in q else 0.0
    a = answer.strip().rstrip(".").lower()
    score += 0.2 if not (len(a) > 12 and a in q.lower()) else 0.0
    return round(score, 3)


def score_example(example: Example, source: str | None) -> dict[str, float | None]:
    """Scores of one example; `source` is the text of its cited chunk."""
    synthetic = example.kind in SYNTHETIC_KINDS
    grounded = (
        None if synthetic or source is None else round(groundedness(example.answer, source), 3)
    )
    length = answer_length_score(example.answer)
    quality = question_quality(example.question, example.answer)
    parts = [length, quality] + ([] if grounded is None else [grounded, grounded])
    return {
        "groundedness": grounded,
        "answer_length": round(length, 3),
        "question_quality": quality,
        "overall": round(sum(parts) / len(parts), 3),
    }


def same_answer(a: str, b: str) -> bool:
    """Answers that state the same content (content-word Jaccard): "Munich" and "Dublin" differ
    although the sentences around them are alike."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return a.strip().lower() == b.strip().lower()
    return len(wa & wb) / len(wa | wb) >= ANSWER_DUPLICATE


def merge_duplicates(examples: Sequence[Example]) -> list[Example]:
    """Near-duplicate questions with the same answer, within one document (or among the
    synthetic examples), are merged: the best-scored one stays, the others point at it."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(e.document_id or f"~{e.kind}", []).append(i)
    out = list(examples)
    for members in groups.values():
        ranked = sorted(members, key=lambda i: (-out[i].scores.get("overall", 0.0), out[i].id))
        kept: list[int] = []
        for i in ranked:
            question = normalise_question(out[i].question)
            twin = next(
                (
                    k
                    for k in kept
                    if fuzz.ratio(question, normalise_question(out[k].question))
                    >= QUESTION_DUPLICATE
                    and same_answer(out[i].answer, out[k].answer)
                ),
                None,
            )
            if twin is None:
                kept.append(i)
            else:
                out[i] = replace(
                    out[i],
                    status="merged",
                    duplicate_of=out[twin].id,
                    scores={**out[i].scores, "duplicate": 1.0},
                )
    return out


def sampled(key: str, rate: float, seed: int) -> bool:
    """A deterministic random sample: the same example is sampled on every run."""
    digest = hashlib.sha256(f"review:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def route(examples: Sequence[Example], threshold: float, sample_rate: float, seed: int = 0):
    """Review routing: low scores and a random sample of the rest go to the queue (`pending`,
    with the reason); the others are `auto_accepted`. Merged duplicates stay merged."""
    out = []
    for e in examples:
        if e.status == "merged":
            out.append(e)
        elif e.scores.get("overall", 0.0) < threshold:
            out.append(replace(e, status="pending", review_reason="low_score"))
        elif sampled(e.id, sample_rate, seed):
            out.append(replace(e, status="pending", review_reason="sample"))
        else:
            out.append(replace(e, status="auto_accepted", review_reason=None))
    return out
