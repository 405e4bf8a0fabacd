"""The run state machine: the one place statuses change."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from resources.run_states import STATES, TRANSITIONS, InvalidTransition, can_move, follow, move


@dataclass
class FakeRun:  # just the two attributes the machine reads; the real row is tested in the API
    status: str
    kind: str = "training"
    id: str = "r1"


@dataclass
class Recorder:
    events: list = field(default_factory=list)

    def add_run_event(self, run_id, kind, message, data=None):
        self.events.append((run_id, kind, message, data))


def test_a_training_run_walks_the_documented_path() -> None:
    run, scope = FakeRun("queued"), Recorder()
    for status in ("preflight", "training", "packaging", "succeeded"):
        assert move(run, status, scope)
    assert run.status == "succeeded"
    assert [e[3]["to"] for e in scope.events] == ["preflight", "training", "packaging", "succeeded"]
    assert scope.events[0][3]["from"] == "queued"


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("succeeded", "training"),
        ("succeeded", "queued"),
        ("queued", "packaging"),
        ("training", "preflight"),
        ("packaging", "training"),
        ("cancelled", "training"),
    ],
)
def test_forbidden_moves_raise(current: str, new: str) -> None:
    run = FakeRun(current)
    with pytest.raises(InvalidTransition, match=f"from {current} to {new}"):
        move(run, new)
    assert run.status == current


def test_unknown_states_and_no_op_moves() -> None:
    with pytest.raises(InvalidTransition, match="unknown"):
        move(FakeRun("queued"), "exploded")
    run, scope = FakeRun("training"), Recorder()
    assert move(run, "training", scope) is False and scope.events == []


def test_retry_and_cancel_moves() -> None:
    for terminal in ("failed", "cancelled"):
        run = FakeRun(terminal)
        assert move(run, "queued")
    for active in ("queued", "preflight", "training", "packaging"):
        assert can_move(active, "cancelling") and can_move(active, "cancelled")
    assert not can_move("succeeded", "cancelling")
    assert set(TRANSITIONS) == set(STATES)


def test_follow_keeps_the_workers_finer_state() -> None:
    run = FakeRun("training")
    assert follow(run, "running") is False and run.status == "training"
    run = FakeRun("queued", kind="training")
    assert follow(run, "running") is False and run.status == "queued"
    pipeline = FakeRun("queued", kind="pipeline")
    assert follow(pipeline, "running") and pipeline.status == "running"
    assert follow(run, "cancelled") and run.status == "cancelled"
    done = FakeRun("succeeded")
    assert follow(done, "failed") is False and done.status == "succeeded"
    packaging = FakeRun("packaging")
    assert follow(packaging, "succeeded") and packaging.status == "succeeded"
