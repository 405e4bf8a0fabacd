"""OpenAI-compatible inference: `model` is `<tenant>/<project>[@<version>]`."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.response import Stream

from api import schemas
from api.auth import Principal
from api.errors import BadRequest
from api.inference import InferenceService, completion_body, stream_events
from resources.database import Database
from resources.repository import TenantScope


class InferenceController(Controller):
    path = "/v1"
    tags = ["inference"]

    @post(
        "/chat/completions",
        operation_id="createChatCompletion",
        sync_to_thread=True,
        status_code=200,
    )
    def chat(
        self, data: schemas.ChatCompletionRequest, principal: Principal, inference: InferenceService
    ) -> dict | Stream:
        """Answer the last user message from the project's deployment, grounded on its
        documents, with citations; earlier turns are the conversation it follows up on
        ("and what is its maximum?" is read with the question before it). `stream: true`
        sends the answer as server-sent events (OpenAI `chat.completion.chunk`s, citations in
        the first)."""
        if data.max_tokens is not None and data.max_tokens < 1:
            raise BadRequest("max_tokens must be at least 1", code="invalid_request")
        last = next(
            (
                i
                for i in range(len(data.messages) - 1, -1, -1)
                if data.messages[i].role == "user" and data.messages[i].content.strip()
            ),
            None,
        )
        if last is None:
            raise BadRequest(
                "messages must contain a non-empty user message", code="no_user_message"
            )
        question = data.messages[last].content
        history = [
            {"role": m.role, "content": m.content}
            for m in data.messages[:last]
            if m.role in ("user", "assistant") and m.content.strip()
        ]
        target = inference.resolve(principal, data.model)
        if data.stream:
            prepared = inference.prepare(target, question, data.max_tokens, history)
            return Stream(
                stream_events(data.model, target, prepared, inference.stream(prepared)),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        answer = inference.answer(target, question, data.max_tokens, history)
        return completion_body(data.model, target, answer)

    @get("/models", operation_id="listModels", sync_to_thread=True)
    def models(self, principal: Principal, db: Database) -> dict:
        """The caller's tenant's active deployments, OpenAI style."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            data = []
            for project in scope.projects():
                active = scope.active_deployment(project.id)
                if active is not None:
                    data.append(
                        {
                            "id": f"{principal.tenant_slug}/{project.slug}",
                            "object": "model",
                            "created": int(active.created_at.timestamp()),
                            "owned_by": principal.tenant_slug,
                            "version": active.version,
                        }
                    )
            return {"object": "list", "data": data}
