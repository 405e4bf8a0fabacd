"""The one place run statuses change: the states a run can be in and the moves between them.

Pipeline runs (the whole graph) go queued -> running -> succeeded | failed | cancelled. Training
runs (the `adapter` asset alone) go queued -> preflight -> training -> packaging -> succeeded |
failed | cancelled. Either can be cancelled while it is not finished (through `cancelling` while
Dagster stops it) and a failed or cancelled training run can be retried (back to queued; it
resumes from its latest checkpoint)."""

from __future__ import annotations

from typing import Any

ACTIVE = ("queued", "running", "preflight", "training", "packaging", "cancelling")
TERMINAL = ("succeeded", "failed", "cancelled")
STATES = ACTIVE + TERMINAL

_WORKING = ("running", "preflight", "training", "packaging")
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "preflight", "failed", "cancelling", "cancelled", "succeeded"}),
    "running": frozenset({"succeeded", "failed", "cancelling", "cancelled"}),
    "preflight": frozenset({"training", "failed", "cancelling", "cancelled"}),
    "training": frozenset({"packaging", "failed", "cancelling", "cancelled"}),
    "packaging": frozenset({"succeeded", "failed", "cancelling", "cancelled"}),
    "cancelling": frozenset({"cancelled", "failed", "succeeded"}),
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),  # retry
    "cancelled": frozenset({"queued"}),  # retry
}


class InvalidTransition(ValueError):
    """A status change the state machine does not allow."""


def can_move(current: str, new: str) -> bool:
    return new == current or new in TRANSITIONS.get(current, frozenset())


def move(run: Any, new: str, scope: Any = None, message: str = "", **data: Any) -> bool:
    """Set `run.status` to `new` if the machine allows it, recording a `status` event in the
    run's timeline when a `TenantScope` is given. Returns False when the run is already there;
    raises InvalidTransition for a move the machine forbids (e.g. succeeded -> training)."""
    if new not in STATES:
        raise InvalidTransition(f"unknown run status {new!r}")
    current = run.status
    if new == current:
        return False
    if not can_move(current, new):
        raise InvalidTransition(f"run {run.id} cannot go from {current} to {new}")
    run.status = new
    if scope is not None:
        scope.add_run_event(
            run.id,
            "status",
            message or f"{current} -> {new}",
            data={"from": current, "to": new, **data},
        )
    return True


def follow(run: Any, reported: str, scope: Any = None, message: str = "", **data: Any) -> bool:
    """Bring the run's status in line with the orchestrator's view (`reported` is one of
    queued/running/succeeded/failed/cancelling/cancelled). A training run's finer states
    (preflight, training, packaging) count as running; moves that would go backwards are
    ignored rather than raised, since the orchestrator may lag behind the worker."""
    current = run.status
    if reported == "running" and (current in _WORKING or getattr(run, "kind", "") == "training"):
        return False  # a training run's worker reports its own finer states
    if reported == "queued" and current != "queued":
        return False
    if can_move(current, reported):
        return move(run, reported, scope, message, **data)
    return False
