"""Deployments (versions of a project's model; one is active: activate, roll back, choose the
serving runtime) and evaluations (each candidate's promotion verdict, each nightly
re-evaluation, their reports)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select

from api import schemas, views
from api.errors import BadRequest, Conflict, NotFound
from api.security import Principal
from api.services import evaluation_view
from api.services.base import TenantService, get_project
from api.services.projects import validate_runtime
from resources import audit
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.tables import Deployment, Project, Run


def _deployment(scope: TenantScope, row: Project, version: int) -> Deployment:
    deployment = scope.deployment(row.id, version)
    if deployment is None:
        raise NotFound(
            f"project {row.slug} has no deployment version {version}; "
            f"list them with GET /v1/projects/{row.slug}/deployments",
            code="deployment_not_found",
        )
    return deployment


class DeploymentService(TenantService):
    def __init__(self, db: Database, principal: Principal, store: ObjectStore) -> None:
        super().__init__(db, principal)
        self.store = store

    def _view(self, deployment: Deployment, project: Project) -> schemas.Deployment:
        return views.deployment(deployment, self.tenant_slug, project.slug)

    def list(self, project: str) -> list[schemas.Deployment]:
        with self.scope() as scope:
            row = get_project(scope, project)
            return [self._view(d, row) for d in scope.deployments(row.id)]

    def overview(self, project: str, history: int = 20) -> DeploymentsOverview:
        """Every version with its evaluation figures, and the latest audited changes of the
        project's deployments (two queries, however many versions)."""
        with self.scope() as scope:
            row = get_project(scope, project)
            rows = scope.deployments(row.id)
            events = audit.query(
                scope.session,
                audit.chain_for(self.tenant_id),
                audit.AuditFilters(action=HISTORY_ACTIONS),
                audit.MAX_PAGE,
            )
            prefix = f"{row.slug}@"
            return DeploymentsOverview(
                deployments=[self._view(d, row) for d in rows],
                figures={
                    d.version: figures_of(d.metrics or {}, (d.manifest or {}).get("gate"))
                    for d in rows
                },
                compared_with={
                    d.version: ((d.manifest or {}).get("gate") or {}).get("compared_with")
                    for d in rows
                },
                history=[
                    HistoryEntry(
                        audit.utc(e.at),
                        e.actor,
                        e.action,
                        e.target.removeprefix(prefix),
                        dict(e.data or {}),
                    )
                    for e in events
                    if e.target.startswith(prefix)
                ][:history],
            )

    def get(self, project: str, version: int) -> schemas.Deployment:
        with self.scope() as scope:
            row = get_project(scope, project)
            return self._view(_deployment(scope, row, version), row)

    def activate(self, project: str, version: int) -> schemas.Deployment:
        """Make this version the active one (any version, older or newer: audited)."""
        with self.scope() as scope:
            row = get_project(scope, project)
            deployment = _deployment(scope, row, version)
            previous = scope.active_deployment(row.id)
            scope.activate(deployment)
            scope.audit(
                self.actor,
                "deployment.activated",
                f"{row.slug}@{version}",
                {"previous_version": previous.version if previous else None},
            )
            return self._view(deployment, row)

    def rollback(
        self, project: str, to_version: int | None, reason: str | None
    ) -> schemas.Deployment:
        """Back to `to_version`, or the newest version older than the active one; audited with
        the versions and the reason."""
        with self.scope() as scope:
            row = get_project(scope, project)
            active = scope.active_deployment(row.id)
            if active is None:
                raise Conflict(
                    f"project {row.slug} has no active deployment to roll back",
                    code="no_active_deployment",
                )
            if to_version is not None:
                target = _deployment(scope, row, to_version)
                if target.version >= active.version:
                    raise BadRequest(
                        f"to_version {to_version} is not older than the active version "
                        f"{active.version}; activate newer versions with "
                        f"POST .../deployments/{to_version}/activate",
                        code="invalid_rollback",
                    )
            else:
                older = [d for d in scope.deployments(row.id) if d.version < active.version]
                if not older:
                    raise Conflict(
                        f"version {active.version} is the project's first deployment: "
                        "there is nothing to roll back to",
                        code="no_earlier_deployment",
                    )
                target = older[0]
            scope.activate(target)
            scope.audit(
                self.actor,
                "deployment.rolled_back",
                f"{row.slug}@{target.version}",
                {"from_version": active.version, "to_version": target.version, "reason": reason},
            )
            return self._view(target, row)

    def set_runtime(
        self, project: str, version: int, data: schemas.ServingRuntime
    ) -> schemas.Deployment:
        """Serve this deployment with another runtime from its next request on; audited."""
        from resources.runtimes import RuntimeSpec

        validate_runtime(data)
        block = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        with self.scope() as scope:
            row = get_project(scope, project)
            deployment = _deployment(scope, row, version)
            manifest = dict(deployment.manifest or {})
            if block.get("kind") == "llama_cpp" and not (manifest.get("gguf_lora") or {}).get(
                "key"
            ):
                reason = (manifest.get("gguf_lora") or {}).get("error") or "not exported"
                raise Conflict(
                    f"deployment v{version} has no GGUF LoRA export ({reason}); "
                    "llama_cpp cannot serve it",
                    code="runtime_unavailable",
                )
            manifest["runtime"] = RuntimeSpec.from_manifest(block).describe()
            deployment.manifest = manifest
            if deployment.manifest_key:
                ProjectStore(self.store, self.tenant_slug, row.slug).put_json(
                    deployment.manifest_key, manifest
                )
            scope.audit(
                self.actor,
                "deployment.runtime_changed",
                f"{row.slug}@{version}",
                {"runtime": manifest["runtime"]},
            )
            return self._view(deployment, row)


# The evaluation figures the deployments screen shows per version (the report has them all).
FIGURES = (
    ("semantic_similarity", "Semantic similarity"),
    ("answer_contains", "Answer contains"),
    ("citation_accuracy", "Citation accuracy"),
    ("refusal_accuracy", "Refusal accuracy"),
    ("unsupported_claim_rate", "Unsupported claims"),
    ("latency_p95_s", "Latency p95 (s)"),
)
HISTORY_ACTIONS = "deployment.*"


@dataclass(frozen=True)
class Figure:
    """One evaluation figure of a version: the candidate's value, that of what it was compared
    with, and the promotion gate's margin when it holds one for this figure."""

    key: str
    label: str
    value: float | None
    compared: float | None
    margin: float | None

    @property
    def delta(self) -> float | None:
        if self.value is None or self.compared is None:
            return None
        return self.value - self.compared


@dataclass(frozen=True)
class HistoryEntry:
    """An audited change of the project's deployments (activated, rolled back, runtime)."""

    at: datetime
    actor: str
    action: str
    version: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DeploymentsOverview:
    deployments: list[schemas.Deployment]
    figures: dict[int, list[Figure]]  # by version
    compared_with: dict[int, str | None]  # by version: base, a former adapter, ...
    history: list[HistoryEntry]

    @property
    def active(self) -> schemas.Deployment | None:
        return next((d for d in self.deployments if d.status == "active"), None)


def figures_of(metrics: dict[str, Any], gate: dict[str, Any] | None) -> list[Figure]:
    """FIGURES from a deployment's metrics ({candidate: {...}, <compared>: {...}})."""
    candidate = metrics.get("candidate") or {}
    others = [k for k in metrics if k != "candidate"]
    compared_key = (gate or {}).get("compared_with") or (others[0] if others else None)
    compared = metrics.get(compared_key) or {} if compared_key else {}
    margins = (gate or {}).get("margins") or {}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) else None

    return [
        Figure(key, label, number(candidate.get(key)), number(compared.get(key)), margins.get(key))
        for key, label in FIGURES
    ]


@dataclass(frozen=True)
class Report:
    data: bytes
    media_type: str


@dataclass(frozen=True)
class EvaluationHistory:
    """Candidates (each with the gate's verdict) and scheduled re-evaluations of the active
    deployment (`passed` false: a regression), newest first; `runs` maps a Dagster run id to
    the run that made the evaluation."""

    candidates: list[schemas.Evaluation]
    scheduled: list[schemas.Evaluation]
    runs: dict[str, str]


@dataclass(frozen=True)
class EvaluationReport:
    """An evaluation's report as the portal shows it (api/services/evaluation_view.py)."""

    evaluation: schemas.Evaluation
    run_id: str | None
    report: dict[str, Any]
    systems: list[str]
    subject: str  # the system judged: candidate, or the re-evaluated active deployment
    metrics: list[evaluation_view.MetricRow]
    sets: list[evaluation_view.SetTable]
    questions: list[evaluation_view.QuestionRow]
    failures: int
    plots: list[evaluation_view.Plot]


class EvaluationService(TenantService):
    def __init__(self, db: Database, principal: Principal, store: ObjectStore) -> None:
        super().__init__(db, principal)
        self.store = store

    def list(self, project: str, limit: int) -> list[schemas.Evaluation]:
        """Newest first: candidates (with the gate's verdict) and scheduled re-evaluations."""
        with self.scope() as scope:
            row = get_project(scope, project)
            return [views.evaluation(e) for e in scope.evaluations(row.id, min(max(limit, 1), 500))]

    def report(self, project: str, evaluation_id: str, format: str) -> Report:
        if format not in ("json", "html"):
            raise BadRequest("format must be json or html", code="invalid_format")
        with self.scope() as scope:
            row = get_project(scope, project)
            evaluation = scope.evaluation(row.id, evaluation_id)
            if evaluation is None:
                raise NotFound(
                    f"evaluation {evaluation_id} not found in project {project}",
                    code="evaluation_not_found",
                )
            key, slug = evaluation.report_key, row.slug
        if format == "html":
            key = key.removesuffix(".json") + ".html"
        try:
            data = ProjectStore(self.store, self.tenant_slug, slug).get_bytes(key)
        except ObjectNotFound as exc:
            raise NotFound(
                f"report {key} is missing from the object store", code="report_missing"
            ) from exc
        media = "text/html; charset=utf-8" if format == "html" else "application/json"
        return Report(data, media)

    def history(self, project: str, limit: int = 200) -> EvaluationHistory:
        """Newest first, split by kind, with the runs that made them (one query each)."""
        with self.scope() as scope:
            row = get_project(scope, project)
            rows = scope.evaluations(row.id, min(max(limit, 1), 500))
            dagster_ids = {e.dagster_run_id for e in rows if e.dagster_run_id}
            runs: dict[str, str] = {}
            if dagster_ids:
                found = scope.session.execute(
                    select(Run.dagster_run_id, Run.id).where(
                        Run.tenant_id == self.tenant_id, Run.dagster_run_id.in_(dagster_ids)
                    )
                )
                runs = {dagster_id: run_id for dagster_id, run_id in found if dagster_id}
            views_ = [views.evaluation(e) for e in rows]
        return EvaluationHistory(
            [e for e in views_ if e.kind != "scheduled"],
            [e for e in views_ if e.kind == "scheduled"],
            runs,
        )

    def report_page(self, project: str, evaluation_id: str) -> EvaluationReport:
        """The report's JSON laid out for reading, with the plots of its HTML rendering."""
        with self.scope() as scope:
            row = get_project(scope, project)
            found = scope.evaluation(row.id, evaluation_id)
            if found is None:
                raise NotFound(
                    f"evaluation {evaluation_id} not found in project {project}",
                    code="evaluation_not_found",
                )
            evaluation = views.evaluation(found)
            run_id = (
                scope.session.scalar(
                    select(Run.id).where(
                        Run.tenant_id == self.tenant_id,
                        Run.dagster_run_id == found.dagster_run_id,
                    )
                )
                if found.dagster_run_id
                else None
            )
        report = json.loads(self.report(project, evaluation_id, "json").data)
        try:
            html = self.report(project, evaluation_id, "html").data.decode("utf-8", "replace")
        except NotFound:  # the JSON is what matters; without its rendering, no plots
            html = ""
        systems = evaluation_view.systems_of(report)
        subject = evaluation_view.subject_of(systems)
        questions = evaluation_view.question_rows(report.get("rows") or [], systems, subject)
        return EvaluationReport(
            evaluation,
            run_id,
            report,
            systems,
            subject,
            evaluation_view.metric_rows(
                report.get("summary") or {}, systems, report.get("gate") or {}, subject
            ),
            evaluation_view.set_tables(report, systems),
            questions,
            sum(q.failed for q in questions),
            evaluation_view.plots_of(html),
        )
