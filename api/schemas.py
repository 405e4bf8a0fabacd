"""Request and response bodies (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from litestar.params import Parameter, ParameterKwarg

from resources.model_registry import SOURCE_KINDS
from resources.object_store import SLUG_RE

# The project settings are defined once, with their defaults and limits, in
# resources/project_settings.py; the API's bodies use them as they are.
from resources.project_settings import NOT_BLANK_PATTERN, ProjectSettingsChange
from resources.project_settings import GeneratorModel as GeneratorModel
from resources.project_settings import PiiRecognizer as PiiRecognizer
from resources.project_settings import ProjectSettings as ProjectSettings
from resources.project_settings import Promotion as Promotion
from resources.project_settings import ServingRuntime as ServingRuntime


def checked(**schema: Any) -> msgspec.Meta:
    """A constraint the service checks itself, answering 400 with its own error code (e.g.
    `invalid_slug`): stated in the OpenAPI document (JSON Schema keywords: pattern, minLength,
    enum, ...) so that what the schema admits is what the API accepts, and not checked a second
    time when the body is decoded."""
    return msgspec.Meta(extra_json_schema={"extra": schema})


# What the services check, stated once for the OpenAPI document (checked() above).
SLUG = checked(pattern=SLUG_RE.pattern)  # tenants, projects, plans (resources/object_store.py)
NOT_BLANK = NOT_BLANK_PATTERN
# The `model` of a chat request: <tenant>/<project>[@<version>] (api/services/inference.py).
MODEL_PATTERN = r"^[a-z0-9-]+/[a-z0-9-]+(@[0-9]+)?$"
# The largest whole numbers the database's integer and bigint columns hold.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
PLAN_LIMIT = checked(minimum=0, maximum=INT32_MAX)  # a whole number >= 0; null: no limit
BIG_PLAN_LIMIT = checked(minimum=0, maximum=INT64_MAX)


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# An address resources/emails.py accepts (email-validator, no DNS look-up): a special-use
# domain (.test, .local, localhost, ...) is refused.
EMAIL = checked(
    format="email",
    **{"not": {"pattern": "[.@]({})$".format("|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)))}},
)


def checked_parameter(**schema: Any) -> ParameterKwarg:
    """checked() for a path or query parameter (Litestar's Parameter): stated in the OpenAPI
    document, checked by the service (or the database) with its own error code."""
    return Parameter(schema_extra=schema)


# --- errors -------------------------------------------------------------------------------


class ErrorInfo(msgspec.Struct, omit_defaults=True):
    """What went wrong: `code` is stable snake_case to branch on, `message` says what to do,
    `details` is machine-readable (its shape depends on the code; for `invalid_request` the
    list of problems, each with the `key` and `source` of the field) and `request_id` is the id
    to quote when reporting it (also the X-Request-Id header)."""

    code: str
    message: str
    details: Any = None
    request_id: str | None = None


class ErrorBody(msgspec.Struct):
    """Every error answer of the API (4xx and 5xx) has this body."""

    error: ErrorInfo


class Health(msgspec.Struct):
    status: Literal["ok"]


class TenantCreate(msgspec.Struct):
    slug: Annotated[str, SLUG]
    name: str | None = None
    # operators only: the plan (default standard) and the first owner's e-mail (invited)
    plan: str | None = None
    owner_email: Annotated[str, EMAIL] | None = None


class Tenant(msgspec.Struct):
    id: str
    slug: str
    name: str
    created_at: datetime


class TenantCreated(msgspec.Struct):
    tenant: Tenant
    # the tenant's first API key (owner role, every scope), shown this once
    api_key: str
    invitation: Invitation | None = None
    invitation_error: str | None = None


class ProjectCreate(msgspec.Struct):
    slug: Annotated[str, SLUG]
    name: str | None = None
    settings: ProjectSettingsChange | None = None


class ProjectUpdate(msgspec.Struct):
    name: str | None = None
    settings: ProjectSettingsChange | None = None


class Project(msgspec.Struct):
    id: str
    slug: str
    name: str
    partition_key: str
    settings: dict[str, Any]
    created_at: datetime


class Document(msgspec.Struct):
    id: str
    filename: str
    sha256: str
    size_bytes: int
    declared_type: str | None
    detected_type: str | None
    status: str
    failure_reason: str | None
    page_count: int | None
    word_count: int | None
    duplicate_of: str | None
    created_at: datetime


class PageInfo(msgspec.Struct):
    number: int
    method: str
    ocr_confidence: float | None
    characters: int


class DocumentDetail(msgspec.Struct):
    document: Document
    metadata: dict[str, Any]
    pages: list[PageInfo]
    scan_status: str | None
    scan_detail: str | None
    language: str | None
    quality_score: float | None
    quality_reasons: list[str]
    redaction_status: str | None
    pii_summary: dict[str, Any]
    similarity: float | None
    redacted_preview: str | None


class UploadResult(msgspec.Struct):
    documents: list[Document]
    created: int
    already_present: int


class RunCreate(msgspec.Struct):
    # pipeline: the whole graph, documents to deployment; training: the adapter alone, on the
    # latest dataset version
    kind: Annotated[str, checked(enum=["pipeline", "training"])] = "pipeline"
    train_steps: Annotated[int, checked(minimum=1, maximum=100_000)] | None = None
    # pipeline runs only
    eval_max_questions: Annotated[int, checked(minimum=0, maximum=10_000)] | None = None
    base_model: str | None = None
    # the adapter's training knobs (assets/training/config.py AdapterConfig)
    hyperparameters: dict[str, Any] | None = None


class DataRightsConfirm(msgspec.Struct):
    confirmed_by: Annotated[str, checked(pattern=NOT_BLANK, maxLength=200)]
    statement: str | None = None


class DataRights(msgspec.Struct):
    confirmed: bool
    confirmed_by: str | None
    confirmed_at: datetime | None
    statement: str | None


class BaseModelInfo(msgspec.Struct):
    id: str
    name: str
    source_kind: str
    licence: str
    context_length: int
    chat_template: str
    parameters: int | None
    size_bytes: int | None
    is_default: bool
    enabled: bool
    allowed_tenants: list[str]
    allowed_plans: list[str]


class BaseModelCreate(msgspec.Struct):
    id: Annotated[str, checked(minLength=1, maxLength=100)]
    name: str
    source_kind: Annotated[str, checked(enum=list(SOURCE_KINDS))]
    source: Annotated[str, checked(minLength=1)]
    licence: Annotated[str, checked(minLength=1)]
    context_length: Annotated[int, checked(minimum=128, maximum=INT32_MAX)]
    allowed_tenants: list[str] = []
    allowed_plans: list[str] = []
    chat_template: str = "bundled"
    parameters: Annotated[int, checked(maximum=INT64_MAX)] | None = None
    size_bytes: Annotated[int, checked(maximum=INT64_MAX)] | None = None
    is_default: bool = False
    enabled: bool = True


class RunEvent(msgspec.Struct):
    at: datetime
    kind: str
    stage: str | None
    message: str
    data: dict[str, Any]


class RunFailure(msgspec.Struct):
    """Why a failed run failed, and what to do: the stage (asset) that failed, a stable
    snake_case `code` (e.g. review_pending, gold_leak, promotion_blocked, out_of_memory,
    internal_error), the `cause` in plain words naming the document / example / setting, the
    `action` to take, and machine-readable `details` (example ids, findings)."""

    stage: str | None
    code: str
    cause: str
    action: str
    details: dict[str, Any] = {}


class Run(msgspec.Struct):
    id: str
    kind: str
    status: str
    dagster_run_id: str | None
    config: dict[str, Any]
    error: str | None
    created_at: datetime
    updated_at: datetime
    events: list[RunEvent] = []
    failure: RunFailure | None = None


class Deployment(msgspec.Struct):
    version: int
    model: str
    status: str
    base_model: str
    adapter_key: str
    dataset_version: str
    metrics: dict[str, Any]
    created_at: datetime
    activated_at: datetime | None
    runtime: dict[str, Any] = msgspec.field(default_factory=dict)
    adapter_version: str | None = None
    index_version: str | None = None
    gguf_lora: bool = False
    gate: dict[str, Any] | None = None


class Rollback(msgspec.Struct):
    """Roll back to `to_version` (default: the newest version older than the active one)."""

    to_version: Annotated[int, checked(maximum=INT32_MAX)] | None = None
    reason: str | None = None


class Evaluation(msgspec.Struct):
    id: str
    kind: str  # candidate | scheduled
    adapter_version: str
    deployment_version: int | None
    compared_with: str | None
    dataset_version: str
    questions: int
    passed: bool
    reasons: list[str]
    summary: dict[str, Any]
    report_key: str
    dagster_run_id: str | None
    created_at: datetime


class ChatMessage(msgspec.Struct):
    role: str
    content: str


class ChatCompletionRequest(msgspec.Struct):
    # <tenant>/<project> (the active deployment) or <tenant>/<project>@<version>
    model: Annotated[str, checked(pattern=MODEL_PATTERN)]
    # the last user message that is not blank is the question; the turns before it, context
    messages: list[ChatMessage]
    max_tokens: Annotated[int, checked(minimum=1)] | None = None
    temperature: float | None = None
    stream: bool = False
    user: str | None = None


class ChatAnswerMessage(msgspec.Struct):
    role: Literal["assistant"]
    content: str


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatAnswerMessage
    finish_reason: str


class ChatUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatAnswerInfo(msgspec.Struct):
    """How the answer was made: the deployment, whether it is grounded in the documents (a
    refusal says why not), how confident retrieval was and what it searched for."""

    deployment_version: int
    adapter_version: str | None
    grounded: bool
    retrieval_confidence: float
    refusal_reason: str | None
    retrieval_query: str
    runtime: str
    latency_seconds: float


class ChatCompletion(msgspec.Struct):
    """The OpenAI `chat.completion` object, with the passages the answer cites."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    citations: list[dict[str, Any]]
    privatune: ChatAnswerInfo


class Model(msgspec.Struct):
    """A project's active deployment, as OpenAI lists a model (`id` is the `model` to ask)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    version: int


class ModelList(msgspec.Struct):
    object: Literal["list"]
    data: list[Model]


class DatasetVersion(msgspec.Struct):
    version: str
    generation: str
    created_at: datetime
    counts: dict[str, Any]
    manifest_key: str


class DatasetVersionDetail(msgspec.Struct):
    version: str
    generation: str
    created_at: datetime
    manifest: dict[str, Any]


class Example(msgspec.Struct):
    id: str
    key: str
    split: str
    kind: str
    generator: str
    document_id: str | None
    question: str
    answer: str
    messages: list[dict[str, str]]
    citations: list[str]
    scores: dict[str, Any]
    status: str
    review_reason: str | None
    duplicate_of: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    original: dict[str, Any]


class ExamplePage(msgspec.Struct):
    items: list[Example]
    total: int
    limit: int
    offset: int


class ReviewNote(msgspec.Struct):
    note: str | None = None
    reviewer: str | None = None


class ReviewEdit(msgspec.Struct):
    question: str | None = None
    answer: str | None = None
    note: str | None = None
    reviewer: str | None = None


class EvaluationQuestionIn(msgspec.Struct, omit_defaults=True):
    question: str | None = None
    answer: str | None = None
    document: str | None = None
    # answer (the default when an answer is given) or refuse
    expect: Annotated[str | None, checked(enum=["answer", "refuse", None])] = None
    # the keys of a gold file (gitdocs/gold.jsonl): q, a, page
    q: str | None = None
    a: str | None = None
    page: str | None = None


class EvaluationSetIn(msgspec.Struct):
    questions: Annotated[list[EvaluationQuestionIn], checked(minItems=1, maxItems=2000)]


class EvaluationQuestion(msgspec.Struct):
    id: str
    question: str
    answer: str | None
    document: str | None
    expect: str
    created_by: str
    created_at: datetime


class EvaluationSet(msgspec.Struct):
    questions: list[EvaluationQuestion]
    answerable: int
    refuse: int


class AuditEvent(msgspec.Struct):
    """One event of an audit chain, with the hashes that link it to the one before."""

    id: int
    chain: str
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    request_id: str | None
    client_address: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct):
    items: list[AuditEvent]
    # pass as before_seq for the next (older) page; None: this is the last page
    next_before_seq: int | None


class AuditBrokenLink(msgspec.Struct):
    seq: int
    id: int | None
    # hash_mismatch | prev_hash_mismatch | seq_gap | head_mismatch | malformed (export lines)
    problem: str
    detail: str


class AuditVerification(msgspec.Struct):
    ok: bool
    chain: str
    rows: int
    head_seq: int
    head_hash: str | None
    first_broken: AuditBrokenLink | None


# --- accounts, members, keys, plans, operators ------------------------------------------------


class TenantMembership(msgspec.Struct):
    tenant: str
    name: str
    role: str
    status: str


class User(msgspec.Struct):
    id: str
    email: str
    display_name: str
    is_operator: bool
    second_factor: bool
    created_at: datetime
    last_sign_in_at: datetime | None
    tenants: list[TenantMembership] = []


class Me(msgspec.Struct):
    """The caller: a signed-in person (with the tenant they act in) or an API key."""

    kind: str  # user | api_key | operator
    actor: str
    tenant: str | None
    role: str | None
    scopes: list[str]
    user: User | None = None


class SignIn(msgspec.Struct):
    email: str
    password: str
    # a user with a second factor may send the code with the password (scripts), or in a second step
    code: str | None = None
    recovery_code: str | None = None
    tenant: str | None = None


class SecondFactor(msgspec.Struct):
    code: str | None = None
    recovery_code: str | None = None


class SignInResult(msgspec.Struct):
    # signed_in | second_factor_required
    status: str
    user: User | None = None
    tenant: str | None = None
    csrf_token: str | None = None


class TenantChoice(msgspec.Struct):
    tenant: str


class PasswordChange(msgspec.Struct):
    current_password: str
    new_password: str


class PasswordResetRequest(msgspec.Struct):
    email: str


class PasswordReset(msgspec.Struct):
    token: str
    new_password: str


class Accepted(msgspec.Struct):
    status: str
    message: str


class TotpSetup(msgspec.Struct):
    """The secret to put in an authenticator app (shown once); confirm with a code to turn it on."""

    secret: str
    otpauth_uri: str


class TotpConfirm(msgspec.Struct):
    code: str


class TotpDisable(msgspec.Struct):
    password: str


class RecoveryCodes(msgspec.Struct):
    """Each works once in place of a code; shown once, stored hashed."""

    recovery_codes: list[str]


class SignUp(msgspec.Struct):
    email: Annotated[str, EMAIL]
    password: str
    tenant_slug: str
    tenant_name: str | None = None
    display_name: str | None = None


class SignUpResult(msgspec.Struct):
    user: User
    tenant: Tenant
    api_key: str


class InvitationCreate(msgspec.Struct):
    email: Annotated[str, EMAIL]
    role: str = "member"


class Invitation(msgspec.Struct):
    id: str
    email: str
    role: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    # pending | accepted | revoked | expired
    state: str
    # whether the link was mailed; when not (no SMTP server), accept_url carries it, once
    sent: bool | None = None
    accept_url: str | None = None


class InvitationPreview(msgspec.Struct):
    tenant: str
    tenant_name: str
    email: str
    role: str
    expires_at: datetime
    has_account: bool


class InvitationAccept(msgspec.Struct):
    token: str
    # a new person chooses a password; an existing one gives theirs (or is signed in)
    password: str | None = None
    display_name: str | None = None


class Member(msgspec.Struct):
    user_id: str
    email: str
    display_name: str
    role: str
    joined_at: datetime
    second_factor: bool
    last_sign_in_at: datetime | None


class MemberUpdate(msgspec.Struct):
    role: str


class ApiKeyCreate(msgspec.Struct):
    name: Annotated[str, checked(pattern=NOT_BLANK, maxLength=200)]
    # read, write, train, deploy, inference, admin: never more than your own
    scopes: list[str]
    # in the future; or expires_in_days (not both)
    expires_at: datetime | None = None
    expires_in_days: Annotated[int, checked(minimum=1, maximum=3650)] | None = None


class ApiKeyInfo(msgspec.Struct):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    role: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    # active | expired | revoked
    state: str


class ApiKeyCreated(msgspec.Struct):
    key: ApiKeyInfo
    # the full secret, shown this once: only its hash is kept
    secret: str


class TenantSummary(msgspec.Struct):
    id: str
    slug: str
    name: str
    plan: str
    status: str
    suspended_at: datetime | None
    suspended_reason: str | None
    created_at: datetime
    projects: int
    documents: int
    members: int


class TenantSuspend(msgspec.Struct):
    reason: Annotated[str, checked(pattern=NOT_BLANK, maxLength=1000)]


class TenantPlanChange(msgspec.Struct):
    plan: str


class Plan(msgspec.Struct):
    """Limits of a plan; null: no limit."""

    id: str
    name: str
    max_documents: int | None
    max_storage_bytes: int | None
    max_runs_per_month: int | None
    max_concurrent_runs: int | None
    max_train_steps: int | None
    chat_requests_per_minute: int | None
    created_at: datetime
    updated_at: datetime


class PlanCreate(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, SLUG]
    name: Annotated[str, checked(pattern=NOT_BLANK, maxLength=200)]
    max_documents: Annotated[int, BIG_PLAN_LIMIT] | None = None
    max_storage_bytes: Annotated[int, BIG_PLAN_LIMIT] | None = None
    max_runs_per_month: Annotated[int, PLAN_LIMIT] | None = None
    max_concurrent_runs: Annotated[int, PLAN_LIMIT] | None = None
    max_train_steps: Annotated[int, PLAN_LIMIT] | None = None
    chat_requests_per_minute: Annotated[int, PLAN_LIMIT] | None = None


class PlanUpdate(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Only the fields given change (null removes a limit)."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    max_documents: Annotated[int, BIG_PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET
    max_storage_bytes: Annotated[int, BIG_PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET
    max_runs_per_month: Annotated[int, PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET
    max_concurrent_runs: Annotated[int, PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET
    max_train_steps: Annotated[int, PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET
    chat_requests_per_minute: Annotated[int, PLAN_LIMIT] | None | msgspec.UnsetType = msgspec.UNSET


class UsageLimit(msgspec.Struct):
    limit: str
    meaning: str
    unit: str
    allowed: int | None
    used: int
    remaining: int | None
    percent: float | None


class Usage(msgspec.Struct):
    plan: str
    plan_name: str
    limits: list[UsageLimit]


class UserImportEntry(msgspec.Struct):
    email: Annotated[str, EMAIL]
    # PBKDF2-SHA256 (Django, passlib or Werkzeug format), bcrypt or argon2id
    password_hash: str
    display_name: str | None = None
    tenant: str | None = None
    role: str | None = None
    is_operator: bool = False


class UserImport(msgspec.Struct):
    users: list[UserImportEntry]


class UserUpdate(msgspec.Struct):
    is_operator: bool | None = None
    disabled: bool | None = None


class ResetLink(msgspec.Struct):
    sent: bool
    # set only when no mail server carried it: hand it to the person yourself
    reset_url: str | None
