"""Gold/train leaks: a gold question, or a passage a gold example shows, that is a near-duplicate of
one in the training data. A model trained on it would be graded on what it memorised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from assets.dataset.scoring import normalise_question, same_answer
from assets.dedupe.near import shingles

# Questions: near-identical, or very close with the same answer (one fact asked alike).
QUESTION_IDENTICAL = 95.0
QUESTION_CLOSE = 88.0
# Passages: word 3-shingle Jaccard, the measure document dedupe uses.
CONTEXT_NEAR = 0.8


@dataclass(frozen=True)
class Leak:
    kind: str  # question | context
    gold: str  # gold example id, or gold chunk id
    train: str  # train example id, or train chunk id
    similarity: float

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "gold": self.gold,
            "train": self.train,
            "similarity": round(self.similarity, 3),
        }


def question_leaks(gold: Sequence[dict], train: Sequence[dict]) -> list[Leak]:
    """Rows with `id`, `question`, `answer`."""
    if not gold or not train:
        return []
    gold_q = [normalise_question(r["question"]) for r in gold]
    train_q = [normalise_question(r["question"]) for r in train]
    matrix = process.cdist(gold_q, train_q, scorer=fuzz.ratio, score_cutoff=QUESTION_CLOSE)
    leaks = []
    for i, j in zip(*matrix.nonzero(), strict=True):
        similarity = float(matrix[i, j])
        if similarity >= QUESTION_IDENTICAL or same_answer(gold[i]["answer"], train[j]["answer"]):
            leaks.append(Leak("question", gold[i]["id"], train[j]["id"], similarity / 100))
    return leaks


def context_leaks(gold: Mapping[str, str], train: Mapping[str, str]) -> list[Leak]:
    """Chunk id -> text for the passages shown in gold and in training examples."""
    train_sets = {k: shingles(v) for k, v in train.items()}
    leaks = []
    for gold_id, gold_text in gold.items():
        a = shingles(gold_text)
        for train_id, b in train_sets.items():
            if gold_id == train_id:
                leaks.append(Leak("context", gold_id, train_id, 1.0))
                continue
            # Jaccard cannot reach the threshold when one set is much smaller than the other.
            if not a or not b or min(len(a), len(b)) < CONTEXT_NEAR * max(len(a), len(b)):
                continue
            similarity = len(a & b) / len(a | b)
            if similarity >= CONTEXT_NEAR:
                leaks.append(Leak("context", gold_id, train_id, similarity))
    return leaks


def near_duplicate_chunks(
    gold: Mapping[str, str], others: Mapping[str, str], threshold: float = CONTEXT_NEAR
) -> set[str]:
    """Ids of `others` that are near-duplicates of a gold chunk (kept out of training)."""
    return {leak.train for leak in context_leaks(gold, others) if leak.similarity >= threshold}
