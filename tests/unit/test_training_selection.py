"""What the next training set holds: the rule `splits` applies and the portal's preview shows,
per split, under each review policy, and whether `wait` holds the version back."""

from __future__ import annotations

import pytest

from assets.dataset.review import select_for_training


def _row(split: str, status: str, score: float, reason: str | None = None) -> dict:
    return {"split": split, "status": status, "scores": {"overall": score}, "review_reason": reason}


ROWS = [
    _row("train", "auto_accepted", 0.9),
    _row("train", "pending", 0.7),  # sampled for review, above the threshold
    _row("train", "pending", 0.3),  # low score
    _row("train", "pending", 0.9, "pii_residual"),  # may hold personal data
    _row("train", "approved", 0.1),
    _row("train", "edited", 0.2),
    _row("train", "rejected", 0.95),
    _row("validation", "merged", 0.9),
    _row("validation", "auto_accepted", 0.8),
    _row("gold", "auto_accepted", 0.65),
]


@pytest.mark.parametrize(
    ("policy", "by_split", "blocked"),
    [
        ("auto", {"train": 4, "validation": 1, "gold": 1}, False),
        ("wait", {"train": 3, "validation": 1, "gold": 1}, True),
    ],
)
def test_selection_per_split_and_whether_wait_blocks(policy, by_split, blocked) -> None:
    selection = select_for_training(ROWS, policy, 0.6)
    assert selection.by_split() == by_split
    assert selection.pending == 3
    assert selection.blocked is blocked


def test_a_decision_moves_the_count_and_an_empty_queue_unblocks_wait() -> None:
    rows = [dict(r) for r in ROWS]
    rows[0]["status"] = "rejected"  # an auto-accepted example rejected
    rows[2]["status"] = "approved"  # a low-scoring one approved
    assert select_for_training(rows, "auto", 0.6).by_split()["train"] == 4
    decided = [dict(r, status="rejected") if r["status"] == "pending" else r for r in rows]
    selection = select_for_training(decided, "wait", 0.6)
    assert not selection.blocked and selection.pending == 0
    assert selection.by_split() == {"train": 3, "validation": 1, "gold": 1}
