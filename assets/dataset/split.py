"""Document-level splits: every example of a document lands in the same split."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "gold")


def assign_splits(
    document_ids: list[str], seed: int = 13, validation: float = 0.15, gold: float = 0.2
) -> dict[str, str]:
    """Map each document to train, validation or gold, deterministically for a seed.

    With three or more documents, validation and gold get at least one document each and
    train keeps the rest."""
    ordered = sorted(
        set(document_ids), key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest()
    )
    n = len(ordered)
    if n < 3:
        return dict.fromkeys(ordered, "train")
    n_gold = max(1, round(n * gold))
    n_val = max(1, round(n * validation))
    if n - n_gold - n_val < 1:
        n_val = 1
        n_gold = max(1, n - 2)
    split = {}
    for i, doc in enumerate(ordered):
        split[doc] = "gold" if i < n_gold else "validation" if i < n_gold + n_val else "train"
    return split
