"""OpenAI-compatible inference: `model` is `<tenant>/<project>[@<version>]`."""

from __future__ import annotations

import time

import msgspec
from litestar import Controller, get, post

from api import schemas
from api.security import Principal, requires_scope
from api.services.inference import (
    InferenceService,
    completion_body,
    conversation,
    stream_events,
)
from api.streams import Stream
from resources.metrics import observe_chat, observed_stream


class InferenceController(Controller):
    path = "/v1"
    tags = ["inference"]

    @post(
        "/chat/completions",
        operation_id="createChatCompletion",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_scope("inference")],
    )
    def chat(
        self, data: schemas.ChatCompletionRequest, principal: Principal, inference: InferenceService
    ) -> schemas.ChatCompletion | Stream:
        """Answer the last user message from the project's deployment, grounded on its
        documents, with citations; earlier turns are the conversation it follows up on
        ("and what is its maximum?" is read with the question before it). `stream: true`
        sends the answer as server-sent events (OpenAI `chat.completion.chunk`s, citations in
        the first)."""
        question, history = conversation(data)
        inference.admit(principal)
        target = inference.resolve(principal, data.model)
        runtime = target.runtime
        started = time.perf_counter()
        try:
            if data.stream:
                prepared = inference.prepare(target, question, data.max_tokens, history)
                refused = prepared.refusal is not None
                pieces = observed_stream(inference.stream(prepared), runtime, refused, started)
                return Stream(
                    stream_events(data.model, target, prepared, pieces),
                    media_type="text/event-stream",
                    headers={"cache-control": "no-cache"},
                )
            answer = inference.answer(target, question, data.max_tokens, history)
        except Exception:
            observe_chat(runtime, 0, 0, time.perf_counter() - started, data.stream, "error")
            raise
        outcome = "answered" if answer.grounded else "refused"
        observe_chat(
            runtime, answer.prompt_tokens, answer.completion_tokens, answer.seconds, False, outcome
        )
        return msgspec.convert(completion_body(data.model, target, answer), schemas.ChatCompletion)

    @get(
        "/models",
        operation_id="listModels",
        sync_to_thread=True,
        guards=[requires_scope("inference")],
    )
    def models(self, principal: Principal, inference: InferenceService) -> schemas.ModelList:
        """The caller's tenant's active deployments, OpenAI style."""
        return msgspec.convert(inference.models(principal), schemas.ModelList)
