"""What the OpenAPI document says each operation answers, derived in one place.

Every error has one body (`schemas.ErrorBody`). Which errors an operation can answer follows from
what its handler is: its guard's `Policy` (401 without valid credentials, 403 without the scope,
role, tenant or operator it needs), its inputs (400 when it takes a body or parameters, 404 when
its path names a resource), its method (403: the CSRF check refuses an unsafe request riding on a
session cookie without its token; 413 for a multipart upload) and, for what only the service
knows (409 conflicts, 413 quotas, 429 limits, 503 a dependency down), a small table by
operation id. `document_operations(app)` installs them on the handlers (Litestar's
`responses=`, one `ResponseSpec` per status) before the document is first built, with the
credentials each guarded operation takes and the media types of operations that answer in more
than one form (JSON or a server-sent event stream, a report in JSON or HTML).

Request bodies: `StructSchemaPlugin` completes Litestar's schema of each msgspec Struct with what
is checked and Litestar leaves out (unknown fields refused, the limits of a list's items, rules
between fields), so that what the document admits is what the API accepts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import (
    StructSchemaPlugin as LitestarStructSchemaPlugin,
)
from litestar.constants import RESERVED_KWARGS
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Reference,
    Schema,
    SecurityRequirement,
    SecurityScheme,
)
from litestar.openapi.spec.operation import Operation
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from api import schemas
from api.schemas import ErrorBody
from api.security import ROLES, SCOPES, Policy, policy_of
from resources.project_settings import (
    GeneratorModel,
    ProjectSettingsChange,
    Promotion,
    ServingRuntime,
)
from resources.settings import get_settings

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The credentials a guarded operation takes (api/authn.py), any one of them.
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "apiKey": SecurityScheme(
        type="http",
        scheme="bearer",
        description="`Authorization: Bearer <token>`: an API key of a tenant (`ptk_...`) or the "
        "operator token",
    ),
    "apiKeyHeader": SecurityScheme(
        type="apiKey",
        name="X-API-Key",
        security_scheme_in="header",
        description="the same token in the X-API-Key header",
    ),
    "portalSession": SecurityScheme(
        type="apiKey",
        name="privatune_session",
        security_scheme_in="cookie",
        description="a signed-in person's portal session (unsafe methods also need the "
        "X-CSRFToken header); `X-Tenant` chooses the tenant to act in",
    ),
}
SECURITY: list[SecurityRequirement] = [{name: []} for name in SECURITY_SCHEMES]

# What only the service knows, by operation id: statuses beyond those the rules derive.
SERVICE_STATUSES: dict[str, tuple[int, ...]] = {
    "signIn": (401, 404, 429),
    "signInSecondFactor": (401, 429),
    "changePassword": (401,),
    "beginTotp": (409,),
    "confirmTotp": (409,),
    "disableTotp": (401,),
    "regenerateRecoveryCodes": (409,),
    "signUp": (409,),
    "acceptInvitation": (401, 409),
    "chooseTenant": (404,),
    "createTenant": (404, 409),
    "suspendTenant": (409,),
    "resumeTenant": (409,),
    "createPlan": (409,),
    "importUsers": (404, 409),
    "changeMemberRole": (409,),
    "removeMember": (409,),
    "inviteMember": (409, 503),
    "revokeInvitation": (409,),
    "revokeApiKey": (409,),
    "createProject": (409, 503),
    "uploadDocuments": (413,),
    "createRun": (409, 413, 429, 503),
    "retryRun": (409, 413, 429, 503),
    "cancelRun": (409, 503),
    "approveExample": (409,),
    "rejectExample": (409,),
    "editExample": (409,),
    "rollbackDeployment": (409,),
    "setDeploymentRuntime": (409,),
    "createChatCompletion": (404, 409, 429, 503),
}

_DESCRIPTIONS: dict[int, str] = {
    400: "The request is invalid: `invalid_request` (the body or a parameter does not match "
    "this document; `details` lists each problem) or a code naming the rule it breaks",
    401: "No credentials, or ones that are not valid (`missing_api_key`, `invalid_api_key`, "
    "an expired session)",
    404: "Not found, or not this tenant's: the code names what (e.g. `project_not_found`)",
    409: "Conflicts with the resource's current state: the code says which, the message what "
    "to do first",
    413: "Too large: a file over the per-file limit (`file_too_large`) or the plan's quota "
    "(`documents_quota_exceeded`, `storage_quota_exceeded`, `train_steps_quota_exceeded`)",
    429: "A rate or quota limit: try again after the `Retry-After` header's seconds",
    503: "A service it needs is unavailable (`orchestrator_unavailable`: Dagster; "
    "`runtime_unavailable`, `mail_unavailable`): nothing was changed, try again later",
}
_FORBIDDEN: dict[str, str] = {
    "scope": "The caller lacks the `{value}` scope (`insufficient_scope`, `insufficient_role`), "
    "acts in no tenant (`tenant_required`) or its tenant is suspended (`tenant_suspended`)",
    "role": "The caller's role is below {value} (`insufficient_role`), it acts in no tenant "
    "(`tenant_required`) or its tenant is suspended (`tenant_suspended`)",
    "operator": "This needs the operator token or an operator's sign-in (`operator_required`)",
    "user": "This needs a signed-in person, not a key (`user_required`)",
    "authenticated": "The caller's tenant is suspended (`tenant_suspended`) or `X-Tenant` names "
    "one they are not a member of (`not_a_member`)",
    "tenant_creation": "Only operators create tenants here (`operator_required`)",
    "public": "Refused (the code says why)",
}
_CSRF = "; for a portal session, the CSRF check failed (`csrf_failed`)"

_TEXT = Schema(type=OpenAPIType.STRING)
_BINARY = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
_OBJECT = Schema(type=OpenAPIType.OBJECT)


def _ref(name: str) -> Reference:
    return Reference(ref=f"#/components/schemas/{name}")


# Operations whose success answer comes in more than one form: media type -> schema.
SUCCESS_CONTENT: dict[str, dict[str, Schema | Reference]] = {
    "createChatCompletion": {
        "application/json": _ref("ChatCompletion"),
        # `stream: true`: OpenAI `chat.completion.chunk` objects as server-sent events
        "text/event-stream": _TEXT,
    },
    "listAuditEvents": {"application/json": _ref("AuditPage"), "application/x-ndjson": _TEXT},
    "listPlatformAuditEvents": {
        "application/json": _ref("AuditPage"),
        "application/x-ndjson": _TEXT,
    },
    "downloadDatasetSplit": {
        "application/x-ndjson": _TEXT,
        "application/vnd.apache.parquet": _BINARY,
    },
    "getEvaluationReport": {"application/json": _OBJECT, "text/html": _TEXT},
}


@dataclass(frozen=True)
class Documented:
    """One operation's documented answers beyond its success."""

    errors: dict[int, str]  # status -> description
    security: list[SecurityRequirement]
    success_content: Mapping[str, Schema | Reference] | None = None


def _inputs(handler: HTTPRouteHandler) -> set[str]:
    """The handler's own inputs: body, path and query parameters (not its dependencies)."""
    names = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies())
    return {n for n in names if n == "data" or n not in RESERVED_KWARGS}


def _is_upload(handler: HTTPRouteHandler) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    media_type = getattr(data.kwarg_definition, "media_type", None) if data else None
    return media_type == RequestEncodingType.MULTI_PART


def error_statuses(
    handler: HTTPRouteHandler, policy: Policy, path_parameters: Iterable[str]
) -> dict[int, str]:
    """The error statuses the handler can answer, each with what it means there."""
    operation_id = str(handler.operation_id)
    unsafe = bool(set(handler.http_methods) - SAFE_METHODS)
    # A public handler that asks for the caller resolves credentials when they are sent.
    resolves_caller = "caller" in handler.parsed_fn_signature.parameters
    statuses = set(SERVICE_STATUSES.get(operation_id, ()))
    if _inputs(handler):
        statuses.add(400)
    if policy.kind != "public" or resolves_caller:
        statuses |= {401, 403}
    if unsafe:
        statuses.add(403)
    if list(path_parameters):
        statuses.add(404)
    if _is_upload(handler):
        statuses.add(413)
    described: dict[int, str] = {}
    for status in sorted(statuses):
        if status == 403:
            kind = (
                policy.kind if policy.kind != "public" or not resolves_caller else "authenticated"
            )
            text = _FORBIDDEN[kind].format(value=policy.value)
            described[status] = text + (_CSRF if unsafe else "")
        else:
            described[status] = _DESCRIPTIONS[status]
    return described


def documented(
    handler: HTTPRouteHandler, policy: Policy, path_parameters: Iterable[str]
) -> Documented:
    return Documented(
        errors=error_statuses(handler, policy, path_parameters),
        security=security_of(policy),
        success_content=SUCCESS_CONTENT.get(str(handler.operation_id)),
    )


def security_of(policy: Policy) -> list[SecurityRequirement]:
    """The credentials the policy asks for; none for a public handler. Tenant creation takes
    the operator token, or nothing where the installation has open sign-up."""
    if policy.kind == "public":
        return []
    if policy.kind == "tenant_creation" and get_settings().open_signup:
        return [*SECURITY, {}]
    return list(SECURITY)


def _operation_class(doc: Documented) -> type[Operation]:
    """Litestar's Operation for this handler, completed once Litestar has built it: the
    credentials it takes, each form of its success answer, Retry-After on a 429."""

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if doc.security:
                self.security = list(doc.security)
            responses: dict[str, Any] = dict(self.responses or {})
            if doc.success_content is not None:
                success = next(s for s in responses if s.startswith("2"))
                responses[success].content = {
                    media: OpenAPIMediaType(schema=schema)
                    for media, schema in doc.success_content.items()
                }
            if "429" in responses:
                responses["429"].headers = {
                    "Retry-After": OpenAPIHeader(
                        schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
                        description="seconds to wait before trying again",
                    )
                }

    return DocumentedOperation


DESCRIPTION = """Turn an organisation's documents into its own fine-tuned, evaluated and deployed
model, and ask it questions (OpenAI-compatible `/v1/chat/completions`).

Every error answer has the body `ErrorBody`: `{"error": {"code", "message", "details"?,
"request_id"}}`; `code` is stable snake_case, `request_id` is also the `X-Request-Id` header.
Each operation lists the statuses it can answer. A tenant's API key (`Authorization: Bearer`)
or a portal session authenticates; the operator token acts on `/v1/admin/...`. Text never
contains NUL characters (U+0000): the API answers 400 for it."""


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="privatune",
        version="0.1.0",
        description=DESCRIPTION,
        path="/schema",
        components=Components(security_schemes=dict(SECURITY_SCHEMES)),
    )


def document_operations(app: Litestar) -> None:
    """Install each operation's documented answers on its handler; call once, after the app
    is built and before its OpenAPI document is first asked for."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            policy = policy_of(handler)
            if policy is None or set(handler.http_methods) == {"OPTIONS"}:
                continue
            doc = documented(handler, policy, route.path_parameters)
            responses = dict(handler.responses or {})
            for status, description in doc.errors.items():
                responses.setdefault(
                    status,
                    ResponseSpec(
                        data_container=ErrorBody,
                        description=description,
                        generate_examples=False,
                    ),
                )
            handler.responses = responses
            handler.operation_class = _operation_class(doc)


# --- request bodies ------------------------------------------------------------------------
# What a body's schema cannot say field by field (rules between fields) and the constraints that
# come from the access model: JSON Schema, merged into the struct's component. Each is a rule the
# service checks (answering 400 with its own code), so what the document admits is accepted.
_NOT_BLANK: dict[str, Any] = {"type": "string", "pattern": schemas.NOT_BLANK}
_ROLE: dict[str, Any] = {"type": "string", "enum": list(ROLES)}
STRUCT_RULES: dict[type, dict[str, Any]] = {
    schemas.ApiKeyCreate: {
        "not": {
            "required": ["expires_at", "expires_in_days"],
            "properties": {
                "expires_at": {"type": "string"},
                "expires_in_days": {"type": "integer"},
            },
        }
    },
    schemas.ReviewEdit: {
        "anyOf": [
            {"required": ["question"], "properties": {"question": _NOT_BLANK}},
            {"required": ["answer"], "properties": {"answer": _NOT_BLANK}},
        ]
    },
    schemas.RunCreate: {
        # a training run does not evaluate
        "if": {"required": ["kind"], "properties": {"kind": {"const": "training"}}},
        "then": {"properties": {"eval_max_questions": {"type": "null"}}},
    },
    ServingRuntime: {
        "if": {"required": ["kind"], "properties": {"kind": {"enum": ["ollama", "openai"]}}},
        "then": {"required": ["base_url"], "properties": {"base_url": {"type": "string"}}},
    },
    GeneratorModel: {
        "allOf": [
            {
                "if": {"required": ["provider"], "properties": {"provider": {"const": "openai"}}},
                "then": {
                    "required": ["base_url", "model"],
                    "properties": {"base_url": {"type": "string"}, "model": {"type": "string"}},
                },
            },
            {
                "if": {"required": ["provider"], "properties": {"provider": {"const": "ollama"}}},
                "then": {"required": ["model"], "properties": {"model": {"type": "string"}}},
            },
        ]
    },
}
FIELD_SCHEMAS: dict[type, dict[str, dict[str, Any]]] = {
    schemas.ApiKeyCreate: {
        "scopes": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(SCOPES)},
        }
    },
    schemas.MemberUpdate: {"role": _ROLE},
    schemas.InvitationCreate: {"role": _ROLE},
    schemas.UserImportEntry: {"role": {"enum": [*ROLES, None]}},
    schemas.ChatCompletionRequest: {
        "messages": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ChatMessage"},
            # the question: a user message that is not blank
            "contains": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"const": "user"}, "content": _NOT_BLANK},
            },
        }
    },
}


def _lazy_field_schemas(struct: type) -> dict[str, dict[str, Any]]:
    """Field schemas whose values live in modules the API loads only when it needs them."""
    if struct is schemas.RunCreate:
        return {"hyperparameters": _hyperparameters()}
    if struct is ProjectSettingsChange:
        from assets.pii.recognizers import BUILTIN_ENTITIES

        # the built-in types (a project's own recognisers add theirs)
        entities = {"type": "array", "minItems": 1, "items": {"enum": sorted(BUILTIN_ENTITIES)}}
        return {"pii_entities": {"anyOf": [entities, {"type": "null"}]}}
    if struct is Promotion:
        from assets.evaluation.report import DEFAULT_MARGINS

        margins = {
            "type": "object",
            "propertyNames": {"enum": list(DEFAULT_MARGINS)},
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        }
        return {"margins": {"anyOf": [margins, {"type": "null"}]}}
    return {}


def _hyperparameters() -> dict[str, Any]:
    """The training knobs a run request may set, from the model that checks them."""
    from assets.training.config import TARGETS, AdapterConfig

    schema = AdapterConfig.model_json_schema()
    properties = schema["properties"]
    properties["target_modules"] |= {
        "minItems": 1,
        "items": {"type": "string", "enum": sorted(TARGETS)},
    }
    return {
        "anyOf": [
            {"type": "object", "properties": properties, "additionalProperties": False},
            {"type": "null"},
        ]
    }


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _clean(schema: Any) -> Any:
    """msgspec's JSON Schema with its `extra` keys (Litestar's schema_extra) merged in."""
    if isinstance(schema, list):
        return [_clean(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _clean(value) for key, value in schema.items() if key != "extra"}
    for key, value in (schema.get("extra") or {}).items():
        out[_camel(key)] = value
    return out


def _is_container(schema: dict[str, Any]) -> bool:
    branches = [schema, *schema.get("anyOf", [])]
    return any(b.get("type") in ("array", "object") for b in branches if isinstance(b, dict))


class StructSchemaPlugin(LitestarStructSchemaPlugin):
    """Litestar's schema of a msgspec Struct, completed with what msgspec checks and Litestar
    leaves out: unknown fields refused (`forbid_unknown_fields`), the constraints of a list's
    items and a mapping's values (msgspec's own schema of such a field), and STRUCT_RULES /
    FIELD_SCHEMAS above."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        result = super().to_openapi_schema(field_definition, schema_creator)
        schema = (
            result
            if isinstance(result, Schema)
            else schema_creator.schema_registry.from_reference(result).schema
        )
        complete_struct_schema(schema, field_definition.type_)
        return result


def complete_struct_schema(schema: Schema, struct: type[msgspec.Struct]) -> None:
    if struct.__struct_config__.forbid_unknown_fields:
        schema.additional_properties = False
    properties: dict[str, Any] = dict(schema.properties or {})
    (reference,), components = msgspec.json.schema_components([struct])
    own = components[reference["$ref"].rsplit("/", 1)[-1]].get("properties", {})
    for name, field_schema in own.items():
        # Fields holding other structs keep Litestar's schema (its references); the rest of the
        # containers take msgspec's, which keeps their items' constraints.
        if name in properties and _is_container(field_schema) and "$ref" not in str(field_schema):
            properties[name] = _clean(field_schema)
    properties.update(_lazy_field_schemas(struct))
    properties.update(FIELD_SCHEMAS.get(struct, {}))
    schema.properties = properties
    aliases = schema.field_aliases()
    for key, value in STRUCT_RULES.get(struct, {}).items():
        setattr(schema, aliases.get(key, key), value)
