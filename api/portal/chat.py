"""Portal pages: the chat playground against any deployed version of a project (the answer
streamed as server-sent events through the same InferenceService calls as the OpenAI streaming
endpoint, the chat quota taken first; the conversation so far comes with each question), and
the document viewer its citations open: the cited page as the deployment's chunks see it,
the cited span marked.

Without JavaScript the chat form posts to the page, which answers whole (the same prepared
question and stream, joined) and shows the conversation again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from api import schemas
from api.errors import AppError, BadRequest
from api.portal.pages import page_scope, render
from api.schemas import INT32_MAX, checked_parameter
from api.security import Principal
from api.services.deployments import DeploymentService
from api.services.documents import DocumentService
from api.services.inference import (
    REFUSAL_REASONS,
    InferenceService,
    Served,
    Target,
    conversation,
)
from resources.metrics import observed_stream

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PageNumber = Annotated[int, checked_parameter(minimum=1, maximum=INT32_MAX)]
Offset = Annotated[int, checked_parameter(minimum=0, maximum=INT32_MAX)]
# The page keeps the whole conversation; what is sent back with a question is bounded (the
# answering reads the last few turns only: assets/retrieval/answering.py HISTORY_TURNS).
HISTORY_MESSAGES = 20
HISTORY_CHARS = 4000


@dataclass(frozen=True)
class Question:
    model: str
    question: str
    history: list[dict[str, str]]


def question_from_form(data: dict[str, Any]) -> Question:
    """The chosen model, the question and the conversation before it (a JSON list of
    {role, content}); BadRequest when they do not fit. The question and the turns go through
    `conversation` as the OpenAI endpoint's messages do."""
    model = str(data.get("model") or "").strip()
    raw = str(data.get("history") or "").strip() or "[]"
    try:
        turns = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("history must be a JSON list of messages", code="invalid_history") from exc
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("content"), str) for t in turns
    ):
        raise BadRequest(
            "history must be a JSON list of {role, content} messages", code="invalid_history"
        )
    messages = [
        schemas.ChatMessage(role=str(t.get("role")), content=t["content"][:HISTORY_CHARS])
        for t in turns[-HISTORY_MESSAGES:]
    ]
    messages.append(schemas.ChatMessage(role="user", content=str(data.get("question") or "")))
    question, history = conversation(schemas.ChatCompletionRequest(model=model, messages=messages))
    return Question(model, question, history)


def viewer_path(
    tenant: str, project: str, document_id: str, page: int, span: tuple[int, int]
) -> str:
    """The document viewer at a page with a span marked (the documents screen links the same
    way): `.../documents/{id}/view?page=N&start=..&end=..`."""
    query = urlencode({"page": page, "start": span[0], "end": span[1]})
    return f"/t/{tenant}/projects/{project}/documents/{document_id}/view?{query}"


def citation_links(
    target: Target, served: Served, documents: DocumentService
) -> list[dict[str, Any]]:
    """Each citation with the viewer link that opens its page with its quote marked."""
    chunks = {str(r.chunk.get("id")): r.chunk for r in served.prepared.retrieved}
    spans = documents.cited_spans(target.project, served.citations, chunks)
    return [
        {
            "filename": c["filename"],
            "page": c["page"],
            "quote": c.get("quote", ""),
            "url": viewer_path(target.tenant, target.project, c["document_id"], c["page"], span)
            + "#cited",
        }
        for c, span in zip(served.citations, spans, strict=True)
    ]


def answer_meta(
    model: str, target: Target, served: Served, links: list[dict[str, Any]]
) -> dict[str, Any]:
    reason = served.prepared.refusal_reason
    refused = served.refusal is not None
    return {
        "model": model,
        "version": target.version,
        "refused": refused,
        "refusal_reason": reason if refused else None,
        "refusal_text": REFUSAL_REASONS.get(reason or "low_confidence", reason)
        if refused
        else None,
        "confidence": round(served.prepared.confidence, 3),
        "citations": links,
    }


def _event(name: str, value: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=json.dumps(value), event=name)


def answer_events(meta: dict[str, Any], pieces: Iterator[str]) -> Iterator[ServerSentEventMessage]:
    """`meta` (version, refusal, citations), the answer in `piece`s, then `done` with the
    whole text; a failure while answering ends the stream with `error`."""
    yield _event("meta", meta)
    text = []
    try:
        for piece in pieces:
            text.append(piece)
            yield _event("piece", piece)
    except AppError as exc:
        yield _event("error", {"code": exc.code, "message": exc.message})
        return
    except Exception as exc:  # the runtime failed mid-answer: say so on the page
        yield _event(
            "error", {"code": "answer_failed", "message": f"the model failed to answer: {exc}"}
        )
        return
    yield _event("done", {"text": "".join(text)})


class PortalChatController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}"
    include_in_schema = False

    def _page(
        self,
        request: Request,
        tenant: str,
        project: str,
        deployments: DeploymentService,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> Template:
        versions = deployments.list(project)
        active = next((d for d in versions if d.status == "active"), None)
        chosen = model or (active.model if active else (versions[0].model if versions else ""))
        messages = messages or []
        return render(
            request,
            "chat/chat.html",
            active="chat",
            project=project,
            status_code=status_code,
            versions=versions,
            chosen=chosen,
            messages=messages,
            history=json.dumps([{"role": m["role"], "content": m["content"]} for m in messages]),
            error=error,
        )

    def _prepare(
        self, principal: Principal, inference: InferenceService, asked: Question
    ) -> tuple[Target, Served]:
        inference.admit(principal)
        target = inference.resolve(principal, asked.model)
        return target, inference.prepare(target, asked.question, None, asked.history)

    @get("/chat", guards=[page_scope("inference")], sync_to_thread=True)
    def chat_page(
        self,
        request: Request,
        tenant: str,
        project: str,
        deployments: DeploymentService,
        model: str | None = None,
    ) -> Template:
        return self._page(request, tenant, project, deployments, model)

    @post("/chat", guards=[page_scope("inference")], sync_to_thread=True, status_code=200)
    def ask(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        principal: Principal,
        inference: InferenceService,
        deployments: DeploymentService,
        documents: DocumentService,
    ) -> Template:
        """Without JavaScript: the whole answer on the page, the conversation kept."""
        before = _previous(data)
        try:
            asked = question_from_form(data)
            target, served = self._prepare(principal, inference, asked)
            runtime = target.runtime
            refused = served.refusal is not None
            text = "".join(
                observed_stream(inference.stream(served), runtime, refused, time.perf_counter())
            )
            meta = answer_meta(
                asked.model, target, served, citation_links(target, served, documents)
            )
        except AppError as exc:
            return self._page(
                request,
                tenant,
                project,
                deployments,
                str(data.get("model") or "") or None,
                before,
                exc.message,
                exc.status_code,
            )
        messages = [
            *before,
            {"role": "user", "content": asked.question},
            {"role": "assistant", "content": text, **meta},
        ]
        return self._page(request, tenant, project, deployments, asked.model, messages)

    @post(
        "/chat/stream",
        guards=[page_scope("inference")],
        sync_to_thread=True,
        media_type="text/event-stream",
        status_code=200,
    )
    def stream(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        principal: Principal,
        inference: InferenceService,
        documents: DocumentService,
    ) -> ServerSentEvent:
        """The answer as server-sent events: `meta`, `piece`s, `done` (or one `error`, with the
        refusal's status: 429 over the chat quota, 404 for an unknown version)."""
        started = time.perf_counter()
        try:
            asked = question_from_form(data)
            target, served = self._prepare(principal, inference, asked)
            meta = answer_meta(
                asked.model, target, served, citation_links(target, served, documents)
            )
        except AppError as exc:
            return ServerSentEvent(
                iter([_event("error", {"code": exc.code, "message": exc.message})]),
                status_code=exc.status_code,
                headers={"cache-control": "no-cache", **exc.headers},
            )
        runtime = target.runtime
        pieces = observed_stream(
            inference.stream(served), runtime, served.refusal is not None, started
        )
        return ServerSentEvent(
            answer_events(meta, pieces),
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @get("/documents/{document_id:str}/view", guards=[page_scope("read")], sync_to_thread=True)
    def document_view(
        self,
        request: Request,
        tenant: str,
        project: str,
        document_id: str,
        documents: DocumentService,
        page: PageNumber = 1,
        start: Offset | None = None,
        end: Offset | None = None,
    ) -> Template:
        """One page of a document's screened text, `start`..`end` marked (a citation's span)."""
        return render(
            request,
            "chat/document.html",
            active="documents",
            project=project,
            view=documents.page_view(project, document_id, page, start, end),
        )


def _previous(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation the no-JavaScript page showed, to show it again (roles and texts)."""
    try:
        turns = json.loads(str(data.get("history") or "[]"))
    except ValueError:
        return []
    if not isinstance(turns, list):
        return []
    return [
        {"role": str(t.get("role")), "content": str(t.get("content"))}
        for t in turns[-HISTORY_MESSAGES:]
        if isinstance(t, dict) and t.get("role") in ("user", "assistant")
    ]
