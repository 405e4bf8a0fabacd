"""What a training run needs before it may start: the tenant's confirmation that it holds the
rights to train on a project's documents, and the approved base models (registry)."""

from __future__ import annotations

from litestar import Controller, get, put

from api import schemas
from api.security import requires_scope
from api.services.training import BaseModelService, DataRightsService


class DataRightsController(Controller):
    path = "/v1/projects/{project:str}/data-rights"
    tags = ["training"]

    @get("/", operation_id="getDataRights", sync_to_thread=True, guards=[requires_scope("read")])
    def show(self, project: str, data_rights: DataRightsService) -> schemas.DataRights:
        """Whether the tenant has confirmed it may train on this project's documents."""
        return data_rights.get(project)

    @put(
        "/", operation_id="confirmDataRights", sync_to_thread=True, guards=[requires_scope("admin")]
    )
    def confirm(
        self, project: str, data: schemas.DataRightsConfirm, data_rights: DataRightsService
    ) -> schemas.DataRights:
        """Confirm, in a named person's name, that the tenant holds the rights to use the
        project's documents for training. Recorded with the time and audited."""
        return data_rights.confirm(project, data.confirmed_by, data.statement)


class BaseModelController(Controller):
    path = "/v1/base-models"
    tags = ["training"]

    @get("/", operation_id="listBaseModels", sync_to_thread=True, guards=[requires_scope("read")])
    def list(self, base_models: BaseModelService) -> list[schemas.BaseModelInfo]:
        """The approved base models this tenant may fine-tune."""
        return base_models.list()
