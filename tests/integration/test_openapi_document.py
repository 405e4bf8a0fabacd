"""The OpenAPI document says what each operation answers (api/openapi.py): the error statuses
its guard's policy, its inputs and its method give it, each with the one error body; the
credentials it takes; every form of its success answer; request schemas with the limits the
services check."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from api import schemas
from api.app import create_app
from api.security import ROLES, SCOPES
from tests.conftest import OPERATOR

UNSAFE = {"post", "put", "patch", "delete"}
ERROR = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import os

    from resources.settings import get_settings

    home = tmp_path_factory.mktemp("openapi")
    previous = os.environ.get("PRIVATUNE_HOME")
    os.environ["PRIVATUNE_HOME"] = str(home)
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            response = client.get("/schema/openapi.json")
            assert response.status_code == 200
            document = response.json()
            # An error as the API sends it has the documented body.
            error = client.get("/v1/projects")
            msgspec.convert(error.json(), schemas.ErrorBody)
            assert error.json()["error"]["request_id"] == error.headers["x-request-id"]
            assert client.get("/v1/admin/tenants", headers=OPERATOR).status_code == 200
            return document
    finally:
        if previous is not None:
            os.environ["PRIVATUNE_HOME"] = previous
        get_settings.cache_clear()


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }


def test_every_error_status_is_documented_with_the_error_body(document):
    operations = _operations(document)
    assert len(operations) >= 80
    for operation_id, (method, path, op) in operations.items():
        statuses = {int(s) for s in op["responses"]}
        for status in statuses - set(range(200, 300)):
            content = op["responses"][str(status)]["content"]
            assert content == {"application/json": {"schema": ERROR}}, (operation_id, status)
        public = "security" not in op
        if not public:
            assert {401, 403} <= statuses, operation_id
        if method in UNSAFE:
            assert 403 in statuses, operation_id  # the CSRF check of a portal session
        if "{" in path:
            assert {400, 404} <= statuses, operation_id
        if op.get("requestBody") or op.get("parameters"):
            assert 400 in statuses, operation_id
    # Public, with no inputs: nothing can go wrong but the server.
    assert set(operations["health"][2]["responses"]) == {"200"}
    assert "security" not in operations["signIn"][2]
    assert {"400", "401", "403", "404", "429"} <= set(operations["signIn"][2]["responses"])


def test_what_only_the_services_know_is_documented(document):
    operations = _operations(document)

    def statuses(operation_id: str) -> set[str]:
        return set(operations[operation_id][2]["responses"])

    # Dagster unreachable; conflicts; the plan's limits, with the header that says when.
    assert {"409", "503"} <= statuses("createProject")
    assert {"409", "413", "429", "503"} <= statuses("createRun")
    assert {"413"} <= statuses("uploadDocuments")
    chat = operations["createChatCompletion"][2]["responses"]
    assert {"404", "409", "429", "503"} <= set(chat)
    assert chat["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    # Tenant creation: the operator token (no open sign-up by default).
    create_tenant = operations["createTenant"][2]
    assert {"401", "403", "409"} <= set(create_tenant["responses"])
    assert {} not in create_tenant["security"]


def test_each_form_of_a_success_answer_is_documented(document):
    operations = _operations(document)
    chat = operations["createChatCompletion"][2]["responses"]["200"]["content"]
    assert chat["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert chat["text/event-stream"]["schema"]["type"] == "string"
    audit = operations["listAuditEvents"][2]["responses"]["200"]["content"]
    assert set(audit) == {"application/json", "application/x-ndjson"}
    files = operations["downloadDatasetSplit"][2]["responses"]["200"]["content"]
    assert set(files) == {"application/x-ndjson", "application/vnd.apache.parquet"}
    models = operations["listModels"][2]["responses"]["200"]["content"]["application/json"]
    assert models["schema"] == {"$ref": "#/components/schemas/ModelList"}
    components = document["components"]
    assert set(components["securitySchemes"]) == {"apiKey", "apiKeyHeader", "portalSession"}
    assert {"ChatCompletion", "ModelList", "Health", "ErrorBody"} <= set(components["schemas"])


def test_request_schemas_state_what_the_services_check(document):
    components = document["components"]["schemas"]
    key = components["ApiKeyCreate"]
    assert key["properties"]["scopes"]["items"]["enum"] == list(SCOPES)
    assert key["properties"]["scopes"]["minItems"] == 1
    assert key["not"]["required"] == ["expires_at", "expires_in_days"]
    assert components["MemberUpdate"]["properties"]["role"]["enum"] == list(ROLES)
    assert components["ProjectCreate"]["properties"]["slug"]["pattern"].startswith("^[a-z0-9]")
    run = components["RunCreate"]
    assert run["properties"]["kind"]["enum"] == ["pipeline", "training"]
    hyper = run["properties"]["hyperparameters"]["anyOf"][0]
    assert hyper["additionalProperties"] is False and "learning_rate" in hyper["properties"]
    # Unknown fields refused, items' limits kept, rules between fields stated.
    settings = components["ProjectSettingsChange"]
    assert settings["additionalProperties"] is False
    terms = settings["properties"]["pii_allow_terms"]["anyOf"][0]["items"]
    assert terms["minLength"] == 1 and terms["maxLength"] == 200
    runtime = components["ServingRuntime"]
    assert runtime["then"]["required"] == ["base_url"]
    messages = components["ChatCompletionRequest"]["properties"]["messages"]
    assert messages["contains"]["properties"]["role"] == {"const": "user"}
    parameters = {
        p["name"]: p["schema"]
        for p in _operations(document)["listDatasetExamples"][2]["parameters"]
    }
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 500)
    assert parameters["split"]["enum"] == ["train", "validation", "gold"]
