"""Portal pages: a project's runs, the form that starts one (AdapterConfig's hyperparameters,
the approved base models, the memory preflight estimated as fields change), and a run's page:
its state, progress and loss curve followed live by server-sent events, its stages,
checkpoints and events, cancel and retry. The page reads everything from the database, so
reloading or closing it changes nothing about the run."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from api import schemas
from api.errors import AppError
from api.portal.pages import flash, may, page_scope, redirect, render
from api.services.run_form import hyperparameter_fields, parse_hyperparameters
from api.services.run_progress import duration_text, loss_chart
from api.services.runs import RunService, RunUpdate
from api.services.training import BaseModelService

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
KINDS = ("training", "pipeline")
MULTI_FIELDS = frozenset(f.name for f in hyperparameter_fields() if f.kind == "multi")
# The live stream reads the database this often, and asks Dagster at most this often.
POLL_S = 1.0
DAGSTER_EVERY_S = 3.0
# A comment line keeps an idle stream open through proxies.
HEARTBEAT_S = 15.0


def _values(pairs: Mapping[str, Any]) -> dict[str, Any]:
    """A form's or query's fields: one value as text, repeated ones (ticked boxes) as a list."""
    out: dict[str, Any] = {}
    for key, value in pairs.items():
        if key in MULTI_FIELDS:
            out[key] = value if isinstance(value, list) else [value]
        elif isinstance(value, list):
            out[key] = value[-1] if value else ""
        else:
            out[key] = value
    return out


def _form_page(
    request: Request,
    project: str,
    runs: RunService,
    base_models: BaseModelService,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    return render(
        request,
        "runs/new.html",
        active="runs",
        project=project,
        status_code=status_code,
        fields=hyperparameter_fields(),
        defaults=runs.form_defaults(project),
        models=base_models.list(),
        kinds=KINDS,
        values=values,
        errors=errors or {},
        error=error,
    )


def _message(kind: str, data: Any, event_id: int | None = None) -> ServerSentEventMessage:
    return ServerSentEventMessage(event=kind, data=json.dumps(data), id=event_id)


class PortalRunController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/runs"
    include_in_schema = False

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def runs(self, request: Request, tenant: str, project: str, runs: RunService) -> Template:
        return render(
            request,
            "runs/list.html",
            active="runs",
            project=project,
            rows=runs.listing(project),
            can_train=may(request, "train"),
            duration=duration_text,
        )

    @get("/new", guards=[page_scope("train")], sync_to_thread=True)
    def new(
        self,
        request: Request,
        tenant: str,
        project: str,
        runs: RunService,
        base_models: BaseModelService,
    ) -> Template:
        return _form_page(request, project, runs, base_models)

    @get("/estimate", guards=[page_scope("train")], sync_to_thread=True)
    def estimate(self, request: Request, tenant: str, project: str, runs: RunService) -> Template:
        """The preflight estimate for the form's current fields (the form's HTMX panel)."""
        values = _values(request.query_params.dict())
        hyperparameters, errors = parse_hyperparameters(values)
        estimate, error = None, None
        if not errors:
            try:
                estimate = runs.estimate(
                    project, str(values.get("base_model") or "") or None, hyperparameters
                )
            except AppError as exc:
                error = exc.message
        return Template(
            template_name="runs/_estimate.html",
            context={"estimate": estimate, "errors": errors, "error": error},
        )

    @post("/", guards=[page_scope("train")], sync_to_thread=True)
    def create(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        runs: RunService,
        base_models: BaseModelService,
    ) -> Redirect | Template:
        values = _values(data)
        hyperparameters, errors = parse_hyperparameters(values)
        if errors:
            return _form_page(
                request,
                project,
                runs,
                base_models,
                values,
                errors,
                "fix the fields marked below",
                status_code=400,
            )
        try:
            run = runs.create(
                project,
                schemas.RunCreate(
                    kind=str(values.get("kind") or "training"),
                    base_model=str(values.get("base_model") or "") or None,
                    hyperparameters=hyperparameters or None,
                ),
            )
        except AppError as exc:
            return _form_page(
                request,
                project,
                runs,
                base_models,
                values,
                {},
                exc.message,
                status_code=exc.status_code,
            )
        flash(request, f"{run.kind.capitalize()} run started.")
        return redirect(f"/t/{tenant}/projects/{project}/runs/{run.id}")

    @get("/{run_id:str}", guards=[page_scope("read")], sync_to_thread=True)
    def run(
        self, request: Request, tenant: str, project: str, run_id: str, runs: RunService
    ) -> Template:
        view = runs.page(project, run_id)
        if request.headers.get("hx-request") == "true":
            # the timeline alone, refreshed when the live stream says it changed
            return Template(
                template_name="runs/_timeline.html",
                context={
                    "view": view,
                    "tenant": tenant,
                    "project": project,
                    "duration": duration_text,
                },
            )
        return render(
            request,
            "runs/detail.html",
            active="runs",
            project=project,
            view=view,
            can_train=may(request, "train"),
            loss_chart=loss_chart(view.points),
            duration=duration_text,
        )

    @get("/{run_id:str}/events", guards=[page_scope("read")])
    async def events(
        self, request: Request, tenant: str, project: str, run_id: str, runs: RunService
    ) -> ServerSentEvent:
        """The run's progress as server-sent events: `progress` (step, total_steps, text, new
        loss points) and `state` (status, tone, terminal), ending when the run ends. `after`
        (or the browser's Last-Event-ID on a reconnection) is the last event the page has."""
        start = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        after = int(start) if str(start).isdigit() else 0
        # the run must exist for this tenant before the stream starts (404 otherwise)
        first = await anyio.to_thread.run_sync(runs.updates, project, run_id, after, True)

        async def stream() -> AsyncGenerator[ServerSentEventMessage, None]:
            update: RunUpdate = first
            seen, status = after, ""
            asked_dagster = quiet_since = time.monotonic()
            while True:
                if update.progress is not None:
                    yield _message(
                        "progress", update.progress.as_event(update.points), update.last_event_id
                    )
                if update.timeline_changed:
                    yield _message("timeline", {"last_event_id": update.last_event_id})
                if update.status != status:
                    status = update.status
                    yield _message(
                        "state",
                        {
                            "status": update.status,
                            "tone": update.tone,
                            "terminal": update.terminal,
                            # a run that ends while watched: the page reloads to show the end
                            "reload": update.terminal and seen != update.last_event_id,
                        },
                    )
                if update.terminal:
                    return
                if update.last_event_id != seen:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                    quiet_since = time.monotonic()
                    yield ServerSentEventMessage(comment="waiting", data=None)
                seen = update.last_event_id
                await anyio.sleep(POLL_S)
                ask = time.monotonic() - asked_dagster >= DAGSTER_EVERY_S
                if ask:
                    asked_dagster = time.monotonic()
                update = await anyio.to_thread.run_sync(runs.updates, project, run_id, seen, ask)

        return ServerSentEvent(stream(), headers={"Cache-Control": "no-store"})

    @post("/{run_id:str}/cancel", guards=[page_scope("train")], sync_to_thread=True)
    def cancel(
        self, request: Request, tenant: str, project: str, run_id: str, runs: RunService
    ) -> Redirect:
        try:
            runs.cancel(project, run_id)
            flash(request, "Cancellation requested: Dagster stops the run.", "info")
        except AppError as exc:
            if exc.status_code == 404:
                raise
            flash(request, exc.message, "bad")
        return redirect(f"/t/{tenant}/projects/{project}/runs/{run_id}")

    @post("/{run_id:str}/retry", guards=[page_scope("train")], sync_to_thread=True)
    def retry(
        self, request: Request, tenant: str, project: str, run_id: str, runs: RunService
    ) -> Redirect:
        try:
            runs.retry(project, run_id)
            flash(request, "Run queued again; a training run resumes from its last checkpoint.")
        except AppError as exc:
            if exc.status_code == 404:
                raise
            flash(request, exc.message, "bad")
        return redirect(f"/t/{tenant}/projects/{project}/runs/{run_id}")
