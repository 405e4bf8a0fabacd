"""A run's progress read from its timeline (`run_events`): the latest training step (step,
total, tokens/s, ETA), the loss and validation-loss points of its curve, its stages with their
durations, its checkpoints, and the other events worth listing. Pure functions over event rows:
the run page and its live stream both build from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from assets.failures import FAILURE_EVENT_KINDS, failure_of_event
from resources.run_states import TERMINAL
from resources.tables import RunEvent

# The badge tone of each run status (the portal's status_badge macro uses the same).
STATUS_TONES = {
    "queued": "info",
    "running": "info",
    "preflight": "info",
    "training": "info",
    "packaging": "info",
    "cancelling": "warn",
    "succeeded": "ok",
    "failed": "bad",
    "cancelled": "warn",
}
# The training-loss series marks its points while the curve is this short.
SHOW_POINTS_BELOW = 100
# Step events are many (one a second while training); the timeline lists everything else.
STEP_KIND = "train_step"
_EVENT_TONES = {
    **dict.fromkeys(FAILURE_EVENT_KINDS, "bad"),
    "error": "bad",
    "stage_finished": "ok",
    "checkpoint": "info",
    "resumed": "info",
    "validation": "info",
    "preflight": "info",
}


def tone(status: str) -> str:
    return STATUS_TONES.get(status, "")


def is_terminal(status: str) -> bool:
    return status in TERMINAL


@dataclass(frozen=True)
class Progress:
    """Where training stands: the latest step event, or what the run is doing before one."""

    step: int | None
    total_steps: int | None
    tokens_per_second: float | None
    eta_seconds: float | None
    text: str

    def as_event(self, points: list[dict[str, Any]]) -> dict[str, Any]:
        """The `progress` server-sent event's data (portal_ui/static/app.js follows it)."""
        return {
            "step": self.step or 0,
            "total_steps": self.total_steps or 0,
            "text": self.text,
            "points": points,
        }


@dataclass(frozen=True)
class StageSpan:
    name: str
    status: str  # running | finished | failed
    started_at: datetime
    seconds: float | None
    message: str


@dataclass(frozen=True)
class Checkpoint:
    step: int
    at: datetime
    key: str


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    stage: str | None
    message: str
    tone: str
    failure: dict[str, Any] | None = None  # stage, code, cause, action of a failure event


@dataclass(frozen=True)
class Timeline:
    stages: list[StageSpan]
    checkpoints: list[Checkpoint]
    entries: list[TimelineEntry]
    preflight: dict[str, Any] | None = None  # the memory preflight's data (fits, estimate...)
    resumed_from: int | None = None


def duration_text(seconds: float | None) -> str:
    """1 h 02 min, 3 min 05 s, 42 s, 0.4 s."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def run_seconds(
    created_at: datetime, updated_at: datetime, status: str, now: datetime | None = None
) -> float:
    """How long the run has taken: to its last change when finished, to now while it runs."""
    end = updated_at if is_terminal(status) else (now or datetime.now(UTC))
    return max(0.0, (_aware(end) - _aware(created_at)).total_seconds())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def loss_points(events: Iterable[RunEvent]) -> list[dict[str, Any]]:
    """The curve's points, one per step in step order: `loss` from step events, `val_loss`
    from per-epoch validation events and the final validation loss the training stage
    finished with. A resumed run's repeated steps keep their latest value."""
    by_step: dict[int, dict[str, Any]] = {}
    for event in events:
        for point in _points_of(event):
            by_step.setdefault(point["step"], {"step": point["step"]}).update(point)
    return [by_step[s] for s in sorted(by_step)]


def _points_of(event: RunEvent) -> list[dict[str, Any]]:
    data = event.data or {}
    if event.kind == STEP_KIND and data.get("loss") is not None:
        return [{"step": int(data["step"]), "loss": round(float(data["loss"]), 5)}]
    if event.kind == "validation" and data.get("loss") is not None:
        return [{"step": int(data.get("step") or 0), "val_loss": round(float(data["loss"]), 5)}]
    if (
        event.kind == "stage_finished"
        and event.stage == "adapter"
        and data.get("validation_loss") is not None
        and data.get("steps")
    ):
        return [{"step": int(data["steps"]), "val_loss": round(float(data["validation_loss"]), 5)}]
    return []


def chart_points(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points as the live chart takes them: both series present, a missing value as None."""
    return [
        {"step": p["step"], "loss": p.get("loss"), "val_loss": p.get("val_loss")} for p in points
    ]


def loss_chart(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The `data-chart` spec of the loss curve (uPlot: x, then one array per series)."""
    return {
        "x": [p["step"] for p in points],
        "series": [
            {
                "label": "training loss",
                "values": [p.get("loss") for p in points],
                # a short curve shows its points (one point alone draws no line)
                "points": len(points) < SHOW_POINTS_BELOW,
            },
            {
                "label": "validation loss",
                "values": [p.get("val_loss") for p in points],
                "points": True,
            },
        ],
        "xlabel": "step",
        "ylabel": "loss",
        "height": 280,
    }


def progress(status: str, events: Sequence[RunEvent], total_hint: int | None = None) -> Progress:
    """The latest step event's figures, or the run's state in words before training starts."""
    latest = next((e for e in reversed(events) if e.kind == STEP_KIND), None)
    if latest is None:
        return Progress(None, total_hint, None, None, _waiting_text(status, events))
    data = latest.data or {}
    step, total = int(data.get("step") or 0), int(data.get("steps") or total_hint or 0) or None
    rate = data.get("tokens_per_second")
    eta = data.get("eta_seconds")
    parts = [f"step {step} of {total}" if total else f"step {step}"]
    if rate is not None:
        parts.append(f"{float(rate):,.0f} tokens/s")
    if eta is not None and not is_terminal(status) and (total is None or step < total):
        parts.append(f"about {duration_text(float(eta))} left")
    if data.get("loss") is not None:
        parts.append(f"loss {float(data['loss']):.4f}")
    if is_terminal(status) or (total and step >= total):
        parts[0] = f"step {step} of {total}: training done" if total else parts[0]
    return Progress(
        step,
        total,
        float(rate) if rate is not None else None,
        float(eta) if eta is not None else None,
        " · ".join(parts),
    )


def _waiting_text(status: str, events: Sequence[RunEvent]) -> str:
    running = [s for s in stage_spans(events) if s.status == "running"]
    if running and not is_terminal(status):
        return f"{running[-1].name} running"
    return {
        "queued": "queued: waiting for a Dagster worker",
        "preflight": "preflight: estimating memory and loading the base model",
        "training": "training: loading the model and the examples",
        "packaging": "packaging the adapter",
        "cancelling": "cancelling: Dagster is stopping the run",
        "running": "running",
        "succeeded": "finished (no training steps in this run)",
        "failed": "failed before any training step",
        "cancelled": "cancelled before any training step",
    }.get(status, status)


def stage_spans(events: Iterable[RunEvent], now: datetime | None = None) -> list[StageSpan]:
    """Each start of a stage, with how it ended and how long it took (still running: so
    far). A stage Dagster retried appears once per attempt."""
    spans: list[StageSpan] = []
    open_at: dict[str, int] = {}
    for event in events:
        if event.kind == "stage_started" and event.stage:
            open_at[event.stage] = len(spans)
            spans.append(StageSpan(event.stage, "running", event.at, None, event.message))
        elif event.kind in ("stage_finished", "stage_failed") and event.stage in open_at:
            i = open_at.pop(event.stage)
            seconds = (event.data or {}).get("seconds")
            if seconds is None:
                seconds = (_aware(event.at) - _aware(spans[i].started_at)).total_seconds()
            status = "finished" if event.kind == "stage_finished" else "failed"
            spans[i] = StageSpan(
                spans[i].name, status, spans[i].started_at, float(seconds), event.message
            )
    current = now or datetime.now(UTC)
    return [
        StageSpan(
            s.name,
            s.status,
            s.started_at,
            max(0.0, (current - _aware(s.started_at)).total_seconds()),
            s.message,
        )
        if s.status == "running"
        else s
        for s in spans
    ]


def timeline(events: Sequence[RunEvent], status: str, now: datetime | None = None) -> Timeline:
    """Stages, checkpoints and the events worth listing (every kind but step events; failure
    events carry their explanation). A finished run's unfinished stages stopped with it."""
    spans = stage_spans(events, now)
    if is_terminal(status):
        spans = [
            StageSpan(s.name, "stopped", s.started_at, None, s.message)
            if s.status == "running"
            else s
            for s in spans
        ]
    checkpoints = [
        Checkpoint(int((e.data or {}).get("step") or 0), e.at, str((e.data or {}).get("key", "")))
        for e in events
        if e.kind == "checkpoint"
    ]
    entries = [
        TimelineEntry(
            e.at,
            e.kind,
            e.stage,
            e.message,
            _EVENT_TONES.get(e.kind, ""),
            failure_of_event(e.kind, e.stage, e.message, e.data)
            if e.kind in FAILURE_EVENT_KINDS
            else None,
        )
        for e in events
        if e.kind != STEP_KIND
    ]
    preflight = next((dict(e.data or {}) for e in reversed(events) if e.kind == "preflight"), None)
    resumed = next((e for e in reversed(events) if e.kind == "resumed"), None)
    return Timeline(
        spans,
        checkpoints,
        entries,
        preflight,
        int((resumed.data or {}).get("step") or 0) if resumed is not None else None,
    )


def has_listed_events(events: Iterable[RunEvent]) -> bool:
    """Whether any of `events` shows in the timeline (a step event does not)."""
    return any(e.kind != STEP_KIND for e in events)
