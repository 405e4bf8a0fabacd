"""Document-level splits: every example of a document lands in the same split.

The assignment is deterministic for a seed, stratified by document type, and frozen: a document
keeps the split it was first given, so the gold set only grows as new documents arrive and model
versions stay comparable."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from resources.project_settings import DEFAULT_SPLIT_SEED

SPLITS = ("train", "validation", "gold")


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _quotas(n: int, validation: float, gold: float) -> tuple[int, int]:
    if n < 3:
        return 0, 0
    n_gold = max(1, round(n * gold))
    n_val = max(1, round(n * validation))
    if n - n_gold - n_val < 1:
        n_val = 1
        n_gold = max(1, n - 2)
    return n_gold, n_val


def _stratum_shares(strata: dict[str, list[str]], total: int, seed: int) -> dict[str, int]:
    """`total` places across strata in proportion to their size (largest remainder, ties by a
    seeded hash), never more than a stratum holds."""
    n = sum(len(v) for v in strata.values())
    exact = {s: total * len(docs) / n for s, docs in strata.items()}
    share = {s: int(v) for s, v in exact.items()}
    order = sorted(strata, key=lambda s: (share[s] - exact[s], _rank(seed, f"stratum:{s}")))
    for s in order[: total - sum(share.values())]:
        share[s] += 1
    return share


def assign_splits(
    document_ids: list[str],
    seed: int = DEFAULT_SPLIT_SEED,
    validation: float = 0.15,
    gold: float = 0.2,
    types: Mapping[str, str] | None = None,
    frozen: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Map each document to train, validation or gold, deterministically for a seed.

    With three or more documents, validation and gold get at least one document each and train
    keeps the rest. `types` (document -> type) stratifies: each type contributes to gold and
    validation in proportion to its size. `frozen` (document -> split) are earlier assignments;
    they are kept, and only the other documents are placed, towards the same fractions."""
    docs = sorted(set(document_ids))
    frozen = {d: s for d, s in (frozen or {}).items() if d in set(docs) and s in SPLITS}
    n_gold, n_val = _quotas(len(docs), validation, gold)
    if not n_gold and not frozen:
        return dict.fromkeys(docs, "train")
    split = dict(frozen)
    new = [d for d in docs if d not in frozen]
    have = {s: sum(1 for v in frozen.values() if v == s) for s in SPLITS}
    want_gold = max(0, n_gold - have["gold"])
    want_val = max(0, n_val - have["validation"])
    strata: dict[str, list[str]] = {}
    for d in new:
        strata.setdefault((types or {}).get(d) or "", []).append(d)
    for docs_of in strata.values():
        docs_of.sort(key=lambda d: _rank(seed, d))
    want_gold = min(want_gold, len(new))
    gold_share = _stratum_shares(strata, want_gold, seed) if new else {}
    rest = {s: docs_of[gold_share[s] :] for s, docs_of in strata.items()}
    rest = {s: v for s, v in rest.items() if v}
    left = sum(len(v) for v in rest.values())
    want_val = min(want_val, left)
    val_share = _stratum_shares(rest, want_val, seed) if rest else {}
    for s, docs_of in strata.items():
        for i, d in enumerate(docs_of):
            g = gold_share.get(s, 0)
            v = val_share.get(s, 0)
            split[d] = "gold" if i < g else "validation" if i < g + v else "train"
    return split
