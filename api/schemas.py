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


class ProjectSettings(msgspec.Struct, omit_defaults=True):
    system_prompt: str | None = None
    refusal_text: str | None = None
    train_steps: int | None = None
    pii_policy: str | None = None
    pii_recognizers: list[PiiRecognizer] | None = None
    near_dup_threshold: float | None = None
    quality_threshold: float | None = None


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
    train_steps: int | None = None
    eval_max_questions: int | None = None


class RunEvent(msgspec.Struct):
    at: datetime
    kind: str
    stage: str | None
    message: str
    data: dict[str, Any]


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
