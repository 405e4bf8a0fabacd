"""Prometheus metrics of the API process: one registry (`REGISTRY`), the functions the code
calls where things happen (`observe_http`, `observe_chat`, `count_upload`), and a collector
that reads what Dagster processes record in the application database at scrape time
(quarantines by reason, runs by status, pipeline stage durations).

Labels never carry tenant data: routes are templates (`/v1/projects/{project_slug}/documents`),
every other label comes from a short fixed list (anything else is counted as `other`).

Quarantines and stage durations are read incrementally (`id` greater than the last row seen,
in batches) and count the whole history from the first scrape on: a restarted process reports
the same totals (no false counter reset), and every API replica reports the same numbers (sum
them with `max`, not `sum`). Rows committed out of id order (a long Dagster transaction that
took its id early) are waited for, for up to an hour.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from resources.database import Database
from resources.logs import get_logger
from resources.run_states import STATES
from resources.runtimes import RUNTIME_KINDS
from resources.tables import AuditEvent, Run, RunEvent

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
log = get_logger("privatune.metrics")

REGISTRY = CollectorRegistry()
REGISTRY.register(PROCESS_COLLECTOR)
REGISTRY.register(PLATFORM_COLLECTOR)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CHAT_OUTCOMES = ("answered", "refused", "error", "aborted")
UPLOAD_OUTCOMES = ("created", "already_present", "quarantined_on_upload")
QUARANTINE_REASONS = (
    "malware",
    "empty",
    "unsupported_type",
    "type_mismatch",
    "archive_rejected",
    "encrypted",
    "corrupt",
    "no_text",
    "timeout",
    "resource_limit",
    "crashed",
    "other",
)

HTTP_REQUESTS = Counter(
    "privatune_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "privatune_http_request_duration_seconds",
    "HTTP request latency (to the last byte sent) by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
CHAT_COMPLETIONS = Counter(
    "privatune_chat_completions",
    "Chat completions by serving runtime, streaming and outcome "
    "(answered, refused, error, aborted: the client left a stream).",
    ["runtime", "stream", "outcome"],
    registry=REGISTRY,
)
CHAT_TOKENS = Counter(
    "privatune_chat_tokens",
    "Tokens of chat completions by runtime and kind (prompt, completion); streamed answers "
    "are not counted (the runtimes' streams do not report them).",
    ["runtime", "kind"],
    registry=REGISTRY,
)
CHAT_DURATION = Histogram(
    "privatune_chat_duration_seconds",
    "Chat completion latency (retrieval and generation; a stream to its end) by runtime.",
    ["runtime", "stream"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
    registry=REGISTRY,
)
UPLOADS = Counter(
    "privatune_uploads",
    "Uploaded files (archive members counted one by one) by outcome: created, "
    "already_present (same sha256 in the project), quarantined_on_upload (a rejected archive).",
    ["outcome"],
    registry=REGISTRY,
)


def _one_of(value: str, allowed: tuple[str, ...] | frozenset[str]) -> str:
    return value if value in allowed else "other"


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    """One HTTP request; `route` is the route template (or `unmatched`), never the raw path."""
    labels = (_one_of(method.upper(), _METHODS), route[:200], str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def observe_chat(
    runtime: str,
    prompt_tokens: int,
    completion_tokens: int,
    seconds: float,
    stream: bool,
    outcome: str,
) -> None:
    """One chat completion (`outcome`: answered, refused, error or aborted)."""
    kind = _one_of(runtime, RUNTIME_KINDS)
    streamed = "true" if stream else "false"
    CHAT_COMPLETIONS.labels(kind, streamed, _one_of(outcome, CHAT_OUTCOMES)).inc()
    CHAT_DURATION.labels(kind, streamed).observe(seconds)
    if prompt_tokens > 0:
        CHAT_TOKENS.labels(kind, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        CHAT_TOKENS.labels(kind, "completion").inc(completion_tokens)


def observed_stream(
    pieces: Iterator[str], runtime: str, refused: bool, started: float
) -> Iterator[str]:
    """`pieces`, passed through; the completion is observed when the stream ends (`started`:
    the request's `time.perf_counter()` when answering began)."""
    outcome = "error"
    try:
        yield from pieces
        outcome = "refused" if refused else "answered"
    except GeneratorExit:
        outcome = "aborted"
        raise
    finally:
        observe_chat(runtime, 0, 0, time.perf_counter() - started, True, outcome)


def count_upload(outcome: str, n: int = 1) -> None:
    """Files an upload request named, by outcome (created, already_present,
    quarantined_on_upload)."""
    if n > 0:
        UPLOADS.labels(_one_of(outcome, UPLOAD_OUTCOMES)).inc(n)


def quarantine_reason(reason: str | None) -> str:
    """The low-cardinality code of a quarantine reason text (`code: message`, as ingestion,
    normalisation and uploads write it)."""
    code = (reason or "").split(":", 1)[0].strip().lower()
    if code.startswith("archive_"):
        return "archive_rejected"
    return _one_of(code, QUARANTINE_REASONS)


def render() -> bytes:
    """The registry in the Prometheus text format (CONTENT_TYPE)."""
    return generate_latest(REGISTRY)


# --- database-backed metrics ---------------------------------------------------------------
GAP_WAIT_S = 3600.0  # how long a missing id is waited for (an uncommitted transaction)
_MAX_PENDING = 10_000
_MAX_GAP = 1_000


@dataclass
class Cursor:
    """Where an incremental read of a table stands: the last id read, and ids below it that were
    missing (not committed yet, or rolled back) with the time they were first missed."""

    last_id: int = 0
    pending: dict[int, float] = field(default_factory=dict)


def _recent(at: datetime | None, now: datetime) -> bool:
    if at is None:
        return False
    if at.tzinfo is None:  # SQLite keeps UTC without the zone
        at = at.replace(tzinfo=UTC)
    return (now - at).total_seconds() < GAP_WAIT_S


def read_new_rows(
    session: Session,
    model: Any,
    columns: list[Any],
    cursor: Cursor,
    batch: int = 2000,
    max_batches: int = 10,
) -> list[Any]:
    """Rows of `model` not read before (id, at, then `columns`), oldest first; advances `cursor`.
    At most `batch * max_batches` new rows per call: a long history is read over a few scrapes."""
    # The cursor moves only when every read succeeded: a failed scrape loses no rows.
    rows: list[Any] = []
    clock = time.monotonic()
    last_id = cursor.last_id
    pending = {i: t for i, t in cursor.pending.items() if clock - t <= GAP_WAIT_S}
    ids = sorted(pending)[:batch]
    if ids:
        found = session.execute(select(model.id, model.at, *columns).where(model.id.in_(ids))).all()
        for row in found:
            pending.pop(row.id, None)
        rows.extend(found)
    now = datetime.now(UTC)
    for _ in range(max_batches):
        fresh = session.execute(
            select(model.id, model.at, *columns)
            .where(model.id > last_id)
            .order_by(model.id)
            .limit(batch)
        ).all()
        for row in fresh:
            gap = row.id - last_id - 1
            if 0 < gap <= _MAX_GAP and _recent(row.at, now):
                for missing in range(last_id + 1, row.id):
                    if len(pending) < _MAX_PENDING:
                        pending.setdefault(missing, clock)
            last_id = row.id
        rows.extend(fresh)
        if len(fresh) < batch:
            break
    cursor.last_id, cursor.pending = last_id, pending
    return rows


_QUARANTINED = "document.quarantined"
_STAGE_FINISHED = "stage_finished"
_STAGE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)


def _stage_label(stage: str | None) -> str:
    if stage and len(stage) <= 60 and stage.replace("_", "").isalnum() and stage.isascii():
        return stage
    return "other"


class DatabaseCollector(Collector):
    """Metrics read from the application database at scrape time. A failing read is logged
    and counted; the scrape then shows the last values."""

    def __init__(self, db: Database) -> None:
        self._lock = threading.Lock()
        self.errors = Counter(
            "privatune_metrics_collect_errors",
            "Failed reads of the database-backed metrics, by collector.",
            ["collector"],
            registry=None,
        )
        self.reset(db)

    def reset(self, db: Database) -> None:
        """Start over on `db` (all history is counted again)."""
        with self._lock:
            self.db = db
            # Resolved now: a Database without a URL follows the settings, which can change.
            self.url = db.resolved_url()
            self._audit = Cursor()
            self._events = Cursor()
            self._runs: dict[str, float] = dict.fromkeys(STATES, 0.0)
            self._quarantines: dict[str, float] = dict.fromkeys(QUARANTINE_REASONS, 0.0)
            self._stages = Histogram(
                "privatune_pipeline_stage_duration_seconds",
                "Duration of finished pipeline stages (Dagster assets), by stage.",
                ["stage"],
                buckets=_STAGE_BUCKETS,
                registry=None,
            )

    def _read_quarantines(self, session: Session) -> None:
        reason = case((AuditEvent.action == _QUARANTINED, AuditEvent.data), else_=None)
        columns = [AuditEvent.action, reason.label("quarantine")]
        for row in read_new_rows(session, AuditEvent, columns, self._audit):
            if row.action == _QUARANTINED:
                data = row.quarantine if isinstance(row.quarantine, dict) else {}
                self._quarantines[quarantine_reason(data.get("reason"))] += 1

    def _read_runs(self, session: Session) -> None:
        counts = dict.fromkeys(STATES, 0.0)
        for status, n in session.execute(select(Run.status, func.count()).group_by(Run.status)):
            key = status if status in STATES else "other"
            counts[key] = counts.get(key, 0.0) + n
        self._runs = counts

    def _read_stages(self, session: Session) -> None:
        seconds = case((RunEvent.kind == _STAGE_FINISHED, RunEvent.data), else_=None)
        columns = [RunEvent.kind, RunEvent.stage, seconds.label("finished")]
        for row in read_new_rows(session, RunEvent, columns, self._events):
            if row.kind != _STAGE_FINISHED or not isinstance(row.finished, dict):
                continue
            value = row.finished.get("seconds")
            if isinstance(value, int | float) and value >= 0:
                self._stages.labels(_stage_label(row.stage)).observe(float(value))

    def refresh(self) -> None:
        """Read what is new. After a failed read the others are skipped (the database is most
        likely away) until the next scrape."""
        steps = (
            ("quarantines", self._read_quarantines),
            ("runs", self._read_runs),
            ("stages", self._read_stages),
        )
        try:
            with self.db.session() as session:
                for name, step in steps:
                    try:
                        step(session)
                    except Exception as exc:
                        self.errors.labels(name).inc()
                        log.warning(
                            "metrics_collect_failed", collector=name, error=f"{type(exc).__name__}"
                        )
                        raise
        except Exception:  # the values stay what the last good read left
            return

    def _families(self) -> Iterator[Metric]:
        quarantined = CounterMetricFamily(
            "privatune_documents_quarantined",
            "Documents quarantined (on upload, by the scan or by extraction), by reason code.",
            labels=["reason"],
        )
        for reason, n in self._quarantines.items():
            quarantined.add_metric([reason], n)
        yield quarantined
        runs = GaugeMetricFamily(
            "privatune_runs", "Runs (pipeline and training) by status.", labels=["status"]
        )
        for status, n in self._runs.items():
            runs.add_metric([status], n)
        yield runs
        yield from self._stages.collect()
        yield from self.errors.collect()

    def describe(self) -> Iterator[Metric]:
        # Registration asks for the names; answering from memory keeps it off the database.
        return self._families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self.refresh()
            families = list(self._families())
        return iter(families)


_collector: DatabaseCollector | None = None
_collector_lock = threading.Lock()


def watch_database(db: Database) -> DatabaseCollector:
    """Collect the database-backed metrics from `db` (one database per process: a call with
    another database starts the counts over on it)."""
    global _collector
    with _collector_lock:
        if _collector is None:
            _collector = DatabaseCollector(db)
            REGISTRY.register(_collector)
        elif _collector.url != db.resolved_url():
            _collector.reset(db)
        else:
            _collector.db = db
        return _collector


_port_started: int | None = None


def serve_metrics_port(port: int) -> bool:
    """Serve the registry without a token on 127.0.0.1:`port` (once per process); False when the
    port is taken (another worker of this API serves it)."""
    global _port_started
    with _collector_lock:
        if _port_started is not None or port <= 0:
            return _port_started == port
        try:
            start_http_server(port, addr="127.0.0.1", registry=REGISTRY)
        except OSError as exc:
            log.warning("metrics_port_unavailable", port=port, error=str(exc))
            return False
        _port_started = port
        log.info("metrics_port_serving", port=port, address="127.0.0.1")
        return True
