"""The training screens' pure parts: the form's fields read from AdapterConfig and a submitted
form typed and checked; a run's curve, progress and stages from its events; an evaluation
report's metric rows and question order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.services.evaluation_view import metric_rows, question_rows
from api.services.run_form import hyperparameter_fields, parse_hyperparameters
from api.services.run_progress import loss_points, progress, stage_spans, timeline
from assets.training.config import AdapterConfig
from resources.tables import RunEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(i: int, kind: str, stage: str | None = None, **data) -> RunEvent:
    return RunEvent(
        id=i, kind=kind, stage=stage, message=kind, data=data, at=T0 + timedelta(seconds=i)
    )


def test_form_fields_are_adapter_configs():
    fields = {f.name: f for f in hyperparameter_fields()}
    assert set(fields) == set(AdapterConfig.model_fields) - {"base_model"}
    for name, field in fields.items():
        info = AdapterConfig.model_fields[name]
        assert field.description == info.description
        default = info.default_factory() if info.default_factory else info.default
        assert field.default == default
    assert fields["rank"].kind == "int" and (fields["rank"].minimum, fields["rank"].maximum) == (
        1,
        512,
    )
    # an exclusive bound is told, not enforced by the browser (it would refuse nothing more)
    assert (
        fields["learning_rate"].minimum is None and "more than 0" in fields["learning_rate"].limits
    )
    assert fields["target_modules"].kind == "multi" and fields["device"].choices == (
        "auto",
        "cpu",
        "cuda",
    )


def _form(**changes):
    form = {f.name: f.default for f in hyperparameter_fields() if f.kind != "bool"}
    form = {k: ("" if v is None else v if isinstance(v, list) else str(v)) for k, v in form.items()}
    form["packing"] = "on"
    form.update(changes)
    return form


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {}),  # the defaults: nothing chosen
        ({"rank": "4", "max_steps": "12"}, {"rank": 4, "max_steps": 12}),
        ({"learning_rate": "1e-3", "epochs": " 1.5 "}, {"learning_rate": 0.001, "epochs": 1.5}),
        ({"packing": None, "qlora": "on"}, {"packing": False, "qlora": True}),
        ({"target_modules": ["q_proj", "up_proj"]}, {"target_modules": ["q_proj", "up_proj"]}),
    ],
)
def test_form_values_are_typed_and_defaults_left_out(changes, expected):
    form = {k: v for k, v in _form(**changes).items() if v is not None}
    values, errors = parse_hyperparameters(form)
    assert errors == {} and values == expected


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"rank": "0"}, "rank", "greater than or equal to 1"),
        ({"rank": "four"}, "rank", "whole number"),
        ({"learning_rate": "0"}, "learning_rate", "greater than 0"),
        ({"dropout": "1"}, "dropout", "less than 1"),
        ({"learning_rate": "nan"}, "learning_rate", "finite"),
        ({"target_modules": ""}, "target_modules", "non-empty subset"),
        ({"target_modules": ["q_proj", "lm_head"]}, "target_modules", "unknown: lm_head"),
    ],
)
def test_bad_fields_are_named(changes, field, words):
    values, errors = parse_hyperparameters(_form(**changes))
    assert values == {} and words in errors[field]


def test_curve_progress_and_stages_from_events():
    events = [
        _event(1, "stage_started", "adapter"),
        _event(
            2,
            "train_step",
            "adapter",
            step=1,
            steps=4,
            loss=2.0,
            tokens_per_second=100.0,
            eta_seconds=30.0,
        ),
        _event(3, "validation", "adapter", step=2, loss=1.8, epoch=1),
        _event(
            4,
            "train_step",
            "adapter",
            step=3,
            steps=4,
            loss=1.5,
            tokens_per_second=120.0,
            eta_seconds=10.0,
        ),
        _event(5, "checkpoint", "adapter", step=3, key="checkpoints/r/step-3"),
        _event(
            6,
            "train_step",
            "adapter",
            step=3,
            steps=4,
            loss=1.4,
            tokens_per_second=121.0,
            eta_seconds=9.0,
        ),
        _event(
            7,
            "train_step",
            "adapter",
            step=4,
            steps=4,
            loss=1.2,
            tokens_per_second=125.0,
            eta_seconds=0.0,
        ),
        _event(8, "stage_finished", "adapter", seconds=7.5, steps=4, validation_loss=1.1),
    ]
    assert loss_points(events) == [
        {"step": 1, "loss": 2.0},
        {"step": 2, "val_loss": 1.8},
        {"step": 3, "loss": 1.4},  # a resumed run's repeated step keeps its latest loss
        {"step": 4, "loss": 1.2, "val_loss": 1.1},
    ]
    running = progress("training", events[:4])
    assert (running.step, running.total_steps) == (3, 4)
    assert running.text == "step 3 of 4 · 120 tokens/s · about 10 s left · loss 1.5000"
    assert progress("succeeded", events).text.startswith("step 4 of 4: training done")
    assert (
        progress("queued", [], 40).text.startswith("queued")
        and progress("queued", [], 40).total_steps == 40
    )
    spans = stage_spans(events)
    assert [(s.name, s.status, s.seconds) for s in spans] == [("adapter", "finished", 7.5)]
    shown = timeline(events, "succeeded")
    assert [c.step for c in shown.checkpoints] == [3]
    assert "train_step" not in {e.kind for e in shown.entries}


def test_a_failed_stage_carries_its_explanation_and_a_finished_run_stops_open_stages():
    events = [
        _event(1, "stage_started", "dataset"),
        _event(
            2,
            "stage_failed",
            "dataset",
            code="review_pending",
            cause="12 wait",
            action="review them",
            seconds=1.0,
        ),
        _event(3, "stage_started", "adapter"),
    ]
    shown = timeline(events, "failed")
    assert [(s.name, s.status) for s in shown.stages] == [
        ("dataset", "failed"),
        ("adapter", "stopped"),
    ]
    failure = next(e.failure for e in shown.entries if e.kind == "stage_failed")
    assert (failure["cause"], failure["action"]) == ("12 wait", "review them")
    assert progress("failed", events).text == "failed before any training step"


def test_metric_rows_and_failures_first():
    summary = {
        "candidate": {
            "semantic_similarity": 0.70,
            "model_semantic_similarity": 0.5,
            "latency_p95_s": 1.0,
        },
        "base": {
            "semantic_similarity": 0.75,
            "model_semantic_similarity": 0.5,
            "latency_p95_s": 0.8,
        },
    }
    gate = {
        "compared_with": "base",
        "margins": {"semantic_similarity": 0.02, "model_semantic_similarity": 0.05},
        "reasons": [
            "on generated gold split: semantic_similarity 0.700 is 0.050 worse than base's"
        ],
    }
    rows = {r.name: r for r in metric_rows(summary, ["candidate", "base"], gate, "candidate")}
    assert rows["semantic_similarity"].blocked and rows["semantic_similarity"].delta == -0.05
    assert rows["semantic_similarity"].beyond_margin
    # named by its full name only: semantic_similarity is not model_semantic_similarity
    assert not rows["model_semantic_similarity"].blocked
    assert rows["latency_p95_s"].better == "" and not rows["latency_p95_s"].blocked
    questions = [
        {
            "id": "a",
            "kind": "answer",
            "question": "?",
            "reference": "x",
            "candidate": {
                "refusal_correct": 1.0,
                "semantic_similarity": 0.9,
                "citation_correct": 1.0,
            },
        },
        {
            "id": "b",
            "kind": "answer",
            "question": "?",
            "reference": "x",
            "candidate": {
                "refusal_correct": 1.0,
                "semantic_similarity": 0.9,
                "citation_correct": 0.0,
            },
        },
        {
            "id": "c",
            "kind": "refusal",
            "question": "?",
            "reference": "",
            "candidate": {"refusal_correct": 0.0, "refused": False},
        },
    ]
    ordered = question_rows(questions, ["candidate"], "candidate")
    assert [q.id for q in ordered] == ["b", "c", "a"]
    assert ordered[0].problems == ["cited the wrong document"]
    assert ordered[1].problems == ["answered a question it should have refused (refusal)"]
