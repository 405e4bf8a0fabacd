"""Failures a person can act on: which stage failed, what went wrong (naming the document,
example or setting when known) and what to do about it.

`StageFailure` is what an asset raises when it refuses to go on for a reason the project's owner
can fix; `explain` turns any other exception into one (`stage()` in assets/project.py records it
in the run's timeline, where the API reads it). Plain Python: the exception classes of the
code base are looked up in `sys.modules`, so nothing heavy is imported to recognise them, and
Dagster is imported only by `to_dagster`."""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Mapping
from typing import Any

INTERNAL = "internal_error"
# Run-event kinds that explain a failure; their `data` holds code, cause, action and details.
FAILURE_EVENT_KINDS = ("check_failed", "stage_failed", "promotion_blocked", "run_failed")


class StageFailure(Exception):
    """A stage stopped for a reason a person can act on. `code` is stable snake_case (for
    clients and tests), `details` is JSON-serialisable (findings, document / example ids)."""

    def __init__(
        self,
        stage: str,
        cause: str,
        action: str,
        code: str = "stage_failed",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.stage = stage
        self.cause = cause.strip()
        self.action = action.strip()
        self.code = code
        self.details: dict[str, Any] = jsonable(dict(details or {}))
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.stage} failed: {_sentence(self.cause)} What to do: {_sentence(self.action)}"

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"StageFailure(stage={self.stage!r}, code={self.code!r}, cause={self.cause!r})"

    def __reduce__(self):  # picklable despite the keyword-rich constructor
        return (StageFailure, (self.stage, self.cause, self.action, self.code, self.details))

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "code": self.code,
            "cause": self.cause,
            "action": self.action,
            "details": self.details,
        }


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def jsonable(value: Any) -> Any:
    """`value` with everything JSON cannot hold turned into something it can (Dagster
    metadata values by their value, sets as sorted lists, anything else as its str)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__module__.startswith("dagster") and hasattr(value, "value"):
        return jsonable(value.value)  # a MetadataValue (a tuple, too: unwrap it first)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=str)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _is(exc: BaseException, module: str, name: str) -> bool:
    """isinstance against a class of the code base, without importing its module (an
    exception of a class whose module was never imported cannot have been raised)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _text(exc: BaseException) -> str:
    """The exception's message, never empty: its type name joins it."""
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _retry(project: str | None, run_id: str | None) -> str:
    if project and run_id:
        return f"POST /v1/projects/{project}/runs/{run_id}/retry"
    return "POST /v1/projects/{project}/runs/{run_id}/retry"


def _report(run_id: str | None) -> str:
    return f"report run {run_id} with this message" if run_id else "report the run id"


def explain(
    exc: BaseException,
    stage: str,
    *,
    project: str | None = None,
    run_id: str | None = None,
) -> StageFailure:
    """Any exception as a StageFailure of `stage`. A StageFailure passes through; a
    `dagster.Failure` keeps its description (the cause) and its metadata (the details); the
    exceptions the code base raises get their own cause and action; anything else is an
    `internal_error` naming the exception's type and message. `project` and `run_id`, when
    known, make the retry advice concrete. The original message is always kept."""
    if isinstance(exc, StageFailure):
        if not exc.stage:
            exc.stage = stage
        return exc
    retry, report = _retry(project, run_id), _report(run_id)
    p = project or "{project}"
    retry_or_report = f"retry the run ({retry}); if it fails again, {report}"
    text = _text(exc)
    # The whole original message stays in the details (the cause may quote only its first line).
    details: dict[str, Any] = {"exception": type(exc).__name__, "message": str(exc)[:4000]}

    def failure(code: str, cause: str, action: str, **extra: Any) -> StageFailure:
        return StageFailure(stage, cause, action, code, {**details, **extra})

    if _is(exc, "dagster", "Failure") or _is(exc, "dagster._core.definitions.events", "Failure"):
        cause_of = exc.__cause__
        if isinstance(cause_of, StageFailure):  # raised by to_dagster(): the original holds all
            return explain(cause_of, stage, project=project, run_id=run_id)
        metadata = jsonable(dict(getattr(exc, "metadata", None) or {}))
        description = getattr(exc, "description", None) or text
        return StageFailure(
            stage,
            description,
            str(metadata.pop("action", "") or "")
            or "the cause says what to change (a project setting, a document, a review); "
            f"change it, then retry the run ({retry})",
            str(metadata.pop("code", "") or "stage_failed"),
            {"exception": "Failure", **metadata},
        )
    # Interruptions first: a cancelled run is not a bug.
    if isinstance(exc, KeyboardInterrupt) or _is(
        exc, "dagster._core.errors", "DagsterExecutionInterruptedError"
    ):
        return failure(
            "interrupted",
            f"the stage was interrupted before it finished ({text}): the run was cancelled or "
            "its worker was stopped",
            f"nothing, if someone cancelled the run; otherwise retry it ({retry})",
        )
    if _is(exc, "sqlalchemy.exc", "IntegrityError"):
        return failure(
            INTERNAL,
            "privatune stored conflicting rows in its application database "
            f"({_first_line(text)}); this is a bug, not your documents",
            retry_or_report,
        )
    if _is(exc, "sqlalchemy.exc", "OperationalError") or _is(
        exc, "sqlalchemy.exc", "InterfaceError"
    ):
        return failure(
            "database_unavailable",
            f"the application database could not be used ({_first_line(text)})",
            "check that the database PRIVATUNE_DATABASE_URL names is up and reachable from the "
            f"Dagster worker, then retry the run ({retry})",
        )
    if _is(exc, "assets.dataset.review", "ReviewPending"):
        return failure(
            "review_pending",
            f"examples wait for review and the project's review policy is `wait` ({text})",
            f"review them (GET /v1/projects/{p}/review, then approve, edit "
            "or reject each), or set review_policy to `auto`; then run again",
        )
    if _is(exc, "assets.training.trainer", "TrainingRefused"):
        return failure(
            "training_refused",
            f"the training run asks for something this machine cannot do: {exc}",
            "change the hyperparameter the cause names (e.g. qlora=false or device=auto) when "
            "starting the run, or run it on a GPU worker",
        )
    if _is(exc, "resources.model_registry", "ModelNotApproved"):
        return failure(
            "model_not_approved",
            str(exc) or text,
            "choose a base model approved for your tenant (GET /v1/base-models) in the run's "
            "base_model or the project's base_model setting, or ask an administrator to approve "
            "this one",
        )
    if _is(exc, "resources.chat_engine", "ModelNotAvailable"):
        return failure(
            "model_not_available",
            f"the base model is not available on the worker: {exc}",
            "install it where the Dagster worker runs (`make install`) or point "
            "PRIVATUNE_BASE_MODEL / the project's base_model at a model folder that exists, "
            f"then retry the run ({retry})",
        )
    if _is(exc, "resources.runtimes", "RuntimeUnavailable"):
        return failure(
            "runtime_unavailable",
            f"the serving runtime cannot be used here: {exc}",
            "do what the cause says (install or start the runtime, set its address or key), or "
            f"choose another runtime for the deployment (PUT /v1/projects/{p}/deployments/"
            f"{{version}}/runtime); then retry the run ({retry})",
        )
    if _is(exc, "assets.dataset.model_generator", "GeneratorUnavailable"):
        return failure(
            "generator_unavailable",
            f"the example generator's model endpoint failed: {exc}",
            "check the project's generator_model settings (base_url, model, API key) and that "
            "the endpoint is up, or use only the deterministic generator (generators: "
            f"[deterministic]); then retry the run ({retry})",
        )
    if _is(exc, "resources.antivirus", "ScannerUnavailable"):
        return failure(
            "scanner_unavailable",
            f"the malware scanner gave no verdict: {exc}",
            "start clamd where the Dagster worker runs and set PRIVATUNE_CLAMD to its socket "
            f"(unix:///… or tcp://host:port), then retry the run ({retry})",
        )
    if _is(exc, "resources.object_store", "ObjectNotFound"):
        key = getattr(exc, "key", str(exc))
        return failure(
            "object_missing",
            f"a file privatune stored earlier is missing from the object store: {key!r}",
            f"run the whole pipeline again (POST /v1/projects/{p}/runs with kind pipeline) "
            "so the earlier stages write it again; if it is a document's upload, upload the "
            f"document again. If it keeps happening, {report}",
            key=key,
        )
    if _is(exc, "assets.deployment.artifacts", "ArtifactCorrupt"):
        return failure(
            "artifact_corrupt",
            f"a stored file does not match the checksum its manifest records: {exc}",
            f"train a new adapter (POST /v1/projects/{p}/runs) so the files are written "
            f"again; if it happens again, {report}",
        )
    if _is(exc, "assets.normalization.extract", "ExtractionError"):
        reason = getattr(exc, "reason", "")
        return failure(
            "document_unreadable",
            f"a document could not be read ({reason}): {exc}",
            "replace the document with a readable copy (a text PDF, DOCX, HTML, Markdown, CSV "
            "or plain text) or delete it, then run again",
            reason=reason,
        )
    if _is(exc, "assets.ingestion.archive", "ArchiveRejected"):
        reason = getattr(exc, "reason", "")
        return failure(
            "archive_rejected",
            f"an uploaded archive was refused ({reason}): {exc}",
            "upload the files themselves, or an archive within the limits the cause names",
            reason=reason,
        )
    if _out_of_memory(exc):
        return failure(
            "out_of_memory",
            f"the worker ran out of memory ({text})",
            "lower batch_size (or batch_tokens) and max_length in the run's hyperparameters, "
            "enable gradient_checkpointing or qlora, or run it on a GPU worker with more memory; "
            f"then retry the run ({retry})",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return failure(
            "disk_full",
            f"the worker's disk is full ({text})",
            "free disk space where the Dagster worker runs (PRIVATUNE_HOME, its model and "
            f"adapter caches, the temporary directory), then retry the run ({retry})",
            path=getattr(exc, "filename", None),
        )
    if _timeout(exc):
        return failure(
            "timeout",
            f"a service the stage depends on did not answer in time ({text})",
            f"retry the run ({retry}); if it times out again, check that the service the cause "
            f"names is up and not overloaded, or {report}",
        )
    if isinstance(exc, ConnectionError) or _named(exc, ("ConnectError", "NetworkError")):
        return failure(
            "service_unreachable",
            f"a service the stage depends on could not be reached ({text})",
            "check that the service the cause names is up and reachable from the Dagster "
            f"worker, then retry the run ({retry})",
        )
    return failure(
        INTERNAL,
        f"privatune hit an unexpected error ({_first_line(text, 1000)}); this is a bug, not "
        "your documents",
        retry_or_report,
    )


def _first_line(text: str, limit: int = 500) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _named(exc: BaseException, names: tuple[str, ...]) -> bool:
    return any(c.__name__ in names for c in type(exc).__mro__)


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or _named(exc, ("OutOfMemoryError",)):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or _named(
        exc, ("TimeoutExpired", "TimeoutException", "ReadTimeout", "ConnectTimeout", "Timeout")
    )


def to_dagster(failure: StageFailure, allow_retries: bool | None = None):
    """A `dagster.Failure` that shows the failure in Dagster's UI: the explained text as its
    description, code, action and details as its metadata. Raise it `from failure` (or from
    the original exception) so the traceback stays with it. `allow_retries=False` makes the
    step fail at once even under a retry policy."""
    import dagster as dg

    metadata: dict[str, Any] = {"code": failure.code, "action": failure.action}
    for key, value in failure.details.items():
        metadata.setdefault(key, value)
    return dg.Failure(description=str(failure), metadata=metadata, allow_retries=allow_retries)


def failure_data(failure: StageFailure, **extra: Any) -> dict[str, Any]:
    """What a failure event's `data` holds."""
    return jsonable(
        {
            **extra,
            "code": failure.code,
            "cause": failure.cause,
            "action": failure.action,
            "details": failure.details,
        }
    )


def failure_of_event(
    kind: str, stage: str | None, message: str, data: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The structured failure a run event records: {stage, code, cause, action, details}.
    Events written before failures were explained hold only a message; it becomes the cause."""
    data = dict(data or {})
    code = data.get("code") or (
        "promotion_blocked" if kind == "promotion_blocked" else "stage_failed"
    )
    if "cause" in data:
        details = data.get("details")
        return {
            "stage": stage,
            "code": code,
            "cause": data["cause"],
            "action": data.get("action") or "",
            "details": dict(details) if isinstance(details, Mapping) else {},
        }
    return {
        "stage": stage,
        "code": code,
        "cause": message,
        "action": "see the run's events and the run in the Dagster UI",
        "details": {k: v for k, v in data.items() if k != "seconds"},
    }
