"""Portal page: a project's settings (admins only), as a form generated from the typed settings
definition (api/portal/settings_form.py), saved through ProjectService.update with the API's
validation; and the confirmation that the tenant holds the rights to train on the project's
documents (DataRightsService)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.errors import AppError
from api.portal.pages import flash, page_scope, redirect, render
from api.portal.settings_form import (
    Choices,
    error_field,
    field_id,
    field_names,
    read_settings_form,
    settings_change,
    settings_form,
)
from api.services.projects import ProjectService
from api.services.training import BaseModelService, DataRightsService

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _choices(stored: dict[str, Any], base_models: BaseModelService) -> dict[str, Choices]:
    """What some fields offer beyond their type: the entity types there are (built-in and the
    project's own recognisers'), the metrics the promotion gate measures, the approved base
    models."""
    from assets.evaluation.report import DEFAULT_MARGINS
    from assets.pii.recognizers import BUILTIN_ENTITIES

    custom = {
        str(r.get("entity_type"))
        for r in stored.get("pii_recognizers") or ()
        if isinstance(r, dict) and r.get("entity_type")
    }
    return {
        "pii_entities": Choices(
            options=tuple(sorted(BUILTIN_ENTITIES | custom)), implied=BUILTIN_ENTITIES
        ),
        "promotion.margins": Choices(keys={k: str(v) for k, v in DEFAULT_MARGINS.items()}),
        "base_model": Choices(suggestions=tuple(m.id for m in base_models.list() if m.enabled)),
    }


class PortalSettingsController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/settings"
    include_in_schema = False

    def _page(
        self,
        request: Request,
        project: str,
        projects: ProjectService,
        data_rights: DataRightsService,
        base_models: BaseModelService,
        values: dict[str, Any] | None = None,
        name: str | None = None,
        errors: dict[str, str] | None = None,
        error: str | None = None,
        rights_error: str | None = None,
        rights_values: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        current = projects.get(project)
        stored = dict(current.settings)
        groups = settings_form(
            stored if values is None else values, errors, _choices(stored, base_models)
        )
        return render(
            request,
            "settings/project.html",
            active="settings",
            project=project,
            status_code=status_code,
            current=current,
            name=current.name if name is None else name,
            groups=groups,
            errors=errors or {},
            error_anchors=[field_id(name) for name in errors or {}],
            error=error,
            rights=data_rights.get(project),
            rights_error=rights_error,
            rights_values=rights_values or {},
        )

    @get("/", guards=[page_scope("admin")], sync_to_thread=True)
    def settings(
        self,
        request: Request,
        tenant: str,
        project: str,
        projects: ProjectService,
        data_rights: DataRightsService,
        base_models: BaseModelService,
    ) -> Template:
        return self._page(request, project, projects, data_rights, base_models)

    @post("/", guards=[page_scope("admin")], sync_to_thread=True)
    def save(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        projects: ProjectService,
        data_rights: DataRightsService,
        base_models: BaseModelService,
    ) -> Template | Redirect:
        current = projects.get(project)
        choices = _choices(dict(current.settings), base_models)
        wanted = read_settings_form(data, choices)
        change = settings_change(current.settings, wanted)
        name = " ".join(str(data.get("name") or "").split())
        renamed = name if name and name != current.name else None
        if not change and not renamed:
            flash(request, "Nothing changed.", "info")
            return redirect(f"/t/{tenant}/projects/{project}/settings")
        try:
            projects.update(project, renamed, change or None)
        except AppError as exc:
            errors: dict[str, str] = {}
            if exc.code == "invalid_settings":
                setting = (exc.details or {}).get("setting", "")
                names = field_names(settings_form(wanted, None, choices))
                errors[error_field(exc.message, setting, names)] = exc.message
            return self._page(
                request,
                project,
                projects,
                data_rights,
                base_models,
                values=wanted,
                name=name,
                errors=errors,
                error=exc.message,
                status_code=exc.status_code,
            )
        saved = sorted(change) + (["name"] if renamed else [])
        flash(request, f"Settings saved ({', '.join(saved)}).")
        return redirect(f"/t/{tenant}/projects/{project}/settings")

    @post("/data-rights", guards=[page_scope("admin")], sync_to_thread=True)
    def confirm_rights(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        projects: ProjectService,
        data_rights: DataRightsService,
        base_models: BaseModelService,
    ) -> Template | Redirect:
        confirmed_by = str(data.get("confirmed_by") or "")
        statement = str(data.get("statement") or "")
        try:
            data_rights.confirm(project, confirmed_by, statement)
        except AppError as exc:
            return self._page(
                request,
                project,
                projects,
                data_rights,
                base_models,
                rights_error=exc.message,
                rights_values={"confirmed_by": confirmed_by, "statement": statement},
                status_code=exc.status_code,
            )
        flash(request, f"Data rights confirmed in the name of {' '.join(confirmed_by.split())}.")
        return redirect(f"/t/{tenant}/projects/{project}/settings#data-rights")
