"""Review policy: which examples the training data holds, given scores and review decisions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

# The policy (`auto`, `wait`) and its thresholds are project settings:
# resources/project_settings.py.
DECISIONS = ("approved", "rejected", "edited")
# pending: in the review queue; auto_accepted: above the threshold and not sampled;
# merged: a near-duplicate of a kept example.
STATUSES = ("pending", "auto_accepted", "approved", "rejected", "edited", "merged")
# Pending for these reasons, an example stays out of training until a reviewer decides.
HELD_FOR_REVIEW = frozenset({"pii_residual"})

Row = TypeVar("Row", bound=Mapping[str, Any])


class ReviewPending(RuntimeError):
    """The project waits for review and the queue is not empty."""


def included(example: Mapping[str, Any], policy: str, threshold: float) -> bool:
    """Approved and edited examples always; rejected and merged ones never, nor those waiting
    because they may hold personal data (`HELD_FOR_REVIEW` reasons). Otherwise, under `auto`,
    any example scoring at least `threshold` (sampled ones too, until a reviewer says
    otherwise); under `wait`, only auto-accepted ones (the queue must be cleared first)."""
    status = example["status"]
    if status in ("approved", "edited"):
        return True
    if status in ("rejected", "merged"):
        return False
    if status == "pending" and example.get("review_reason") in HELD_FOR_REVIEW:
        return False
    overall = float((example.get("scores") or {}).get("overall") or 0.0)
    if policy == "wait":
        return status == "auto_accepted"
    return overall >= threshold


@dataclass(frozen=True)
class TrainingSelection(Generic[Row]):
    """What `splits` makes of a generation's examples under the project's review policy."""

    selected: list[Row]
    # examples still in the review queue
    pending: int
    # `wait` with a non-empty queue: `splits` stops and writes no dataset version
    blocked: bool

    def by_split(self) -> dict[str, int]:
        return dict(Counter(str(r["split"]) for r in self.selected))


def select_for_training(
    rows: Sequence[Row], policy: str, threshold: float
) -> TrainingSelection[Row]:
    """The examples training reads (`included`), and whether the policy holds the version back;
    the `splits` asset and the portal's preview of the next training set both ask this."""
    pending = sum(1 for r in rows if r["status"] == "pending")
    return TrainingSelection(
        selected=[r for r in rows if included(r, policy, threshold)],
        pending=pending,
        blocked=policy == "wait" and pending > 0,
    )


def apply_decision(example: dict[str, Any], decision: Mapping[str, Any]) -> dict[str, Any]:
    """An example with a review decision applied (edits replace the question/answer in its
    messages too)."""
    out = dict(example)
    out["status"] = decision["decision"]
    if decision["decision"] == "edited":
        question = decision.get("question") or example["question"]
        answer = decision.get("answer") or example["answer"]
        messages = [dict(m) for m in example["messages"]]
        for m in messages:
            if m["role"] == "user":
                m["content"] = m["content"].replace(
                    f"Question: {example['question']}", f"Question: {question}"
                )
            elif m["role"] == "assistant":
                m["content"] = answer
        out.update(question=question, answer=answer, messages=messages)
    return out
