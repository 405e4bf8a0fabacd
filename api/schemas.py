"""Request and response bodies (msgspec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class TenantCreate(msgspec.Struct):
    slug: str
    name: str | None = None


class Tenant(msgspec.Struct):
    id: str
    slug: str
    name: str
    created_at: datetime


class TenantCreated(msgspec.Struct):
    tenant: Tenant
    api_key: str


class PiiRecognizer(msgspec.Struct, omit_defaults=True):
    name: str
    entity_type: str
    pattern: str
    score: float = 0.85
    context: list[str] = []


class GeneratorModel(msgspec.Struct, omit_defaults=True):
    """The model-based generator's teacher: the base model in-process (`local`), or any
    OpenAI-compatible server (`openai`, `ollama`). The API key is read from the environment
    variable `api_key_env` at run time; it is never stored."""

    provider: str = "local"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    max_chunks: int | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    timeout_s: float | None = None


class Promotion(msgspec.Struct, omit_defaults=True):
    """The promotion gate: how much worse than the active deployment a candidate may be per
    metric, its latency budget, and whether the first candidate must also hold the margins
    against the base model."""

    margins: dict[str, float] | None = None
    latency_budget_p95_s: float | None = None
    compare_first_with_base: bool | None = None


class ServingRuntime(msgspec.Struct, omit_defaults=True):
    """How the project's next deployments are served (resources/runtimes)."""

    kind: str = "transformers"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout_s: float | None = None
    n_threads: int | None = None
    n_ctx: int | None = None
    max_batch: int | None = None


class ProjectSettings(msgspec.Struct, omit_defaults=True):
    system_prompt: str | None = None
    refusal_text: str | None = None
    escalation_text: str | None = None
    refusal_share: float | None = None
    generators: list[str] | None = None
    generator_model: GeneratorModel | None = None
    chunk_tokens: int | None = None
    chunk_overlap_tokens: int | None = None
    split_seed: int | None = None
    review_policy: str | None = None
    auto_accept_threshold: float | None = None
    review_sample_rate: float | None = None
    train_steps: int | None = None
    pii_policy: str | None = None
    pii_recognizers: list[PiiRecognizer] | None = None
    # Terms that are never personal data here (product names, public authors), entity types to
    # screen (unset: the defaults), and what residual findings after redaction do: review | fail.
    pii_allow_terms: list[str] | None = None
    pii_entities: list[str] | None = None
    pii_residual: str | None = None
    near_dup_threshold: float | None = None
    quality_threshold: float | None = None
    promotion: Promotion | None = None
    retrieval_min_confidence: float | None = None
    runtime: ServingRuntime | None = None


class ProjectCreate(msgspec.Struct):
    slug: str
    name: str | None = None
    settings: ProjectSettings | None = None


class ProjectUpdate(msgspec.Struct):
    name: str | None = None
    settings: ProjectSettings | None = None


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
    kind: str = "pipeline"
    train_steps: int | None = None
    eval_max_questions: int | None = None
    base_model: str | None = None
    hyperparameters: dict[str, Any] | None = None


class DataRightsConfirm(msgspec.Struct):
    confirmed_by: str
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
    id: str
    name: str
    source_kind: str
    source: str
    licence: str
    context_length: int
    allowed_tenants: list[str] = []
    allowed_plans: list[str] = []
    chat_template: str = "bundled"
    parameters: int | None = None
    size_bytes: int | None = None
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

    to_version: int | None = None
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
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False
    user: str | None = None


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
    expect: str | None = None
    # the keys of a gold file (gitdocs/gold.jsonl): q, a, page
    q: str | None = None
    a: str | None = None
    page: str | None = None


class EvaluationSetIn(msgspec.Struct):
    questions: list[EvaluationQuestionIn]


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
