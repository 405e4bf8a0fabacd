"""Portal pages: a project's dataset versions with their counts, the examples of a version
filtered by split, kind, status and score (the review queue is status `pending`), approving,
rejecting and editing an example in its row, and what the next training set would hold.

Decisions go through `ReviewService.decide` (recorded, audited, applied to the next `splits`);
with HTMX the row is swapped in place and the next-training-set panel reloads (`HX-Trigger`),
without it the form posts and the page comes back."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api import schemas
from api.errors import AppError, BadRequest
from api.portal.pages import flash, may, page_scope, redirect, render
from api.services.datasets import SPLITS, DatasetService, ReviewService
from assets.dataset.review import STATUSES

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PAGE_SIZE = 25
# The event the next-training-set panel reloads on after a decision.
CHANGED = "review-changed"


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _score(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise BadRequest(f"{name} must be a number from 0 to 1", code="invalid_score")
    return number


def _back(tenant: str, project: str, query: object) -> str:
    """The dataset page the person came from (only its query string is taken from the form)."""
    text = str(query or "")
    return f"/t/{tenant}/projects/{project}/dataset" + (text if text.startswith("?") else "")


def _fragment(
    template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Template:
    return Template(
        template_name=template, context=context, status_code=status_code, headers=headers
    )


class PortalDatasetController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/dataset"
    include_in_schema = False

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def dataset(
        self,
        request: Request,
        tenant: str,
        project: str,
        datasets: DatasetService,
        version: str | None = None,
        split: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        min_score: str | None = None,
        max_score: str | None = None,
        offset: int = 0,
    ) -> Template:
        filters = {
            "split": split or None,
            "kind": kind or None,
            "status": status or None,
            "min_score": _score(min_score, "min_score"),
            "max_score": _score(max_score, "max_score"),
        }
        browser = datasets.browse(project, version or None, PAGE_SIZE, max(offset, 0), **filters)
        chosen = {k: v for k, v in {"version": version or None, **filters}.items() if v is not None}
        return render(
            request,
            "dataset/page.html",
            active="dataset",
            project=project,
            browser=browser,
            next_set=datasets.next_training_set(project),
            filters=chosen,
            splits=SPLITS,
            statuses=STATUSES,
            can_review=may(request, "write"),
            back="?" + request.url.query if request.url.query else "",
        )

    @get("/next", guards=[page_scope("read")], sync_to_thread=True)
    def next_set(
        self, request: Request, tenant: str, project: str, datasets: DatasetService
    ) -> Template:
        """The next-training-set panel alone (reloaded after each decision)."""
        return _fragment(
            "dataset/_next.html",
            tenant=tenant,
            project=project,
            next_set=datasets.next_training_set(project),
        )

    @get("/examples/{example_id:str}", guards=[page_scope("read")], sync_to_thread=True)
    def row(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        datasets: DatasetService,
        back: str | None = None,
    ) -> Template | Redirect:
        """The example's row (the edit form's Cancel); a browser without script gets the page."""
        if not _htmx(request):
            return redirect(_back(tenant, project, back))
        return _fragment(
            "dataset/_row.html",
            tenant=tenant,
            project=project,
            example=datasets.example(project, example_id),
            can_review=may(request, "write"),
            back=back or "",
        )

    @get("/examples/{example_id:str}/edit", guards=[page_scope("write")], sync_to_thread=True)
    def edit_form(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        datasets: DatasetService,
        back: str | None = None,
    ) -> Template:
        example = datasets.example(project, example_id)
        if _htmx(request):
            return _fragment(
                "dataset/_edit_row.html",
                tenant=tenant,
                project=project,
                example=example,
                back=back or "",
                error=None,
            )
        return render(
            request,
            "dataset/edit.html",
            active="dataset",
            project=project,
            example=example,
            back=back or "",
            error=None,
        )

    @post("/examples/{example_id:str}/edit", guards=[page_scope("write")], sync_to_thread=True)
    def edit(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        data: Form,
        reviews: ReviewService,
        datasets: DatasetService,
    ) -> Template | Redirect:
        """Save the new question and/or answer (the original is kept; the example is approved)."""
        back = str(data.get("back") or "")
        values = {k: str(data.get(k) or "") for k in ("question", "answer", "note")}
        try:
            example = reviews.decide(
                project,
                example_id,
                "edited",
                values["note"].strip() or None,
                None,
                values["question"],
                values["answer"],
            )
        except AppError as exc:
            context: dict[str, Any] = {
                "example": datasets.example(project, example_id),
                "values": values,
                "back": back,
                "error": exc.message,
            }
            if _htmx(request):
                return _fragment(
                    "dataset/_edit_row.html",
                    status_code=exc.status_code,
                    tenant=tenant,
                    project=project,
                    **context,
                )
            return render(
                request,
                "dataset/edit.html",
                active="dataset",
                project=project,
                status_code=exc.status_code,
                **context,
            )
        return self._decided(request, tenant, project, example, back)

    @post("/examples/{example_id:str}/approve", guards=[page_scope("write")], sync_to_thread=True)
    def approve(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        data: Form,
        reviews: ReviewService,
        datasets: DatasetService,
    ) -> Template | Redirect:
        """Training uses the example whatever its score."""
        return self._decide(
            request, tenant, project, example_id, "approved", data, reviews, datasets
        )

    @post("/examples/{example_id:str}/reject", guards=[page_scope("write")], sync_to_thread=True)
    def reject(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        data: Form,
        reviews: ReviewService,
        datasets: DatasetService,
    ) -> Template | Redirect:
        """Training never uses the example (nor the same one in later generations)."""
        return self._decide(
            request, tenant, project, example_id, "rejected", data, reviews, datasets
        )

    def _decide(
        self,
        request: Request,
        tenant: str,
        project: str,
        example_id: str,
        decision: str,
        data: dict[str, Any],
        reviews: ReviewService,
        datasets: DatasetService,
    ) -> Template | Redirect:
        back = str(data.get("back") or "")
        try:
            example = reviews.decide(project, example_id, decision, None, None)
        except AppError as exc:
            if not _htmx(request):
                flash(request, exc.message, "bad")
                return redirect(_back(tenant, project, back))
            return _fragment(
                "dataset/_row.html",
                status_code=exc.status_code,
                tenant=tenant,
                project=project,
                example=datasets.example(project, example_id),
                can_review=True,
                back=back,
                error=exc.message,
            )
        return self._decided(request, tenant, project, example, back)

    @staticmethod
    def _decided(
        request: Request, tenant: str, project: str, example: schemas.Example, back: str
    ) -> Template | Redirect:
        if _htmx(request):
            return _fragment(
                "dataset/_row.html",
                headers={"HX-Trigger": CHANGED},
                tenant=tenant,
                project=project,
                example=example,
                can_review=True,
                back=back,
            )
        flash(request, f"Example {example.key[:12]} is now {example.status}.")
        return redirect(_back(tenant, project, back))
