"""Grounded answers from a project's active (or pinned) deployment."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from api.security import Principal
from api.services.plans import Quotas
from assets.dataset.assets import from_jsonl
from assets.deployment.artifacts import adapter_ref
from assets.retrieval.answering import Answering, Prepared, compose
from assets.retrieval.grounding import GroundingIndex
from resources.database import Database
from resources.model_runtime import resolve_base_model
from resources.object_store import ObjectStore, ProjectStore
from resources.project_settings import InvalidSetting, ProjectSettings
from resources.repository import TenantScope
from resources.runtimes import RuntimeSpec, RuntimeUnavailable, get_runtime
from resources.settings import get_settings

_MODEL = re.compile(r"^(?P<tenant>[a-z0-9-]+)/(?P<project>[a-z0-9-]+)(?:@(?P<version>\d+))?$")
MAX_NEW_TOKENS = 512
# The direct answer before the quoted evidence is a sentence or two.
DEFAULT_NEW_TOKENS = 64
# Why a question was refused (`Answer.refusal_reason`), as the portal's chat says it.
REFUSAL_REASONS = {
    "low_confidence": "the project's documents do not answer it with enough confidence",
    "secret": "it asks for the value of a secret or credential",
    "personal_data": "it asks for personal data about a person",
    "action": "it asks the assistant to act, which it cannot do",
    "organisation": "it asks who someone in your organisation is",
}


@dataclass(frozen=True)
class Target:
    tenant: str
    project: str
    project_settings: ProjectSettings
    version: int
    manifest: dict

    @property
    def runtime(self) -> str:
        """The runtime kind the deployment's package names (transformers unless it says)."""
        return str((self.manifest.get("runtime") or {}).get("kind", "transformers"))


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[dict]
    grounded: bool
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    confidence: float = 0.0
    refusal_reason: str | None = None  # low_confidence | secret | personal_data | action | ...
    query: str = ""  # what retrieval searched for (a follow-up: with the question before it)


@dataclass(frozen=True)
class Served:
    """One question made ready: retrieval done, and the runtime and adapter that answer it."""

    prepared: Prepared
    runtime: Any
    adapter: Any
    max_new_tokens: int
    refusal_texts: tuple[str, ...] = ()

    @property
    def refusal(self) -> str | None:
        return self.prepared.refusal

    @property
    def citations(self) -> list[dict]:
        return self.prepared.citations


def conversation(request: Any) -> tuple[str, list[dict[str, str]]]:
    """The question (the last non-empty user message) and the turns before it."""
    if request.max_tokens is not None and request.max_tokens < 1:
        raise BadRequest("max_tokens must be at least 1", code="invalid_request")
    messages = request.messages
    last = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if messages[i].role == "user" and messages[i].content.strip()
        ),
        None,
    )
    if last is None:
        raise BadRequest("messages must contain a non-empty user message", code="no_user_message")
    history = [
        {"role": m.role, "content": m.content}
        for m in messages[:last]
        if m.role in ("user", "assistant") and m.content.strip()
    ]
    return messages[last].content, history


class InferenceService:
    def __init__(self, db: Database, store: ObjectStore, index_cache_size: int = 32) -> None:
        self.db = db
        self.store = store
        self._indexes: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = index_cache_size

    def admit(self, principal: Principal) -> None:
        """Counts the request against the plan's chat requests a minute (429 over it)."""
        assert principal.tenant_id is not None
        with self.db.session() as session:
            Quotas(TenantScope(session, principal.tenant_id)).take_chat_request()

    def models(self, principal: Principal) -> dict:
        """The tenant's active deployments, OpenAI style."""
        assert principal.tenant_id is not None
        data = []
        with self.db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
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

    def resolve(self, principal: Principal, model: str) -> Target:
        match = _MODEL.match(model)
        if not match:
            raise BadRequest(
                f"model {model!r} is not of the form <tenant>/<project> or <tenant>/<project>@<version>",
                code="invalid_model",
            )
        not_found = NotFound(
            f"model {model!r} not found; list yours with GET /v1/models", code="model_not_found"
        )
        # Another tenant's model does not exist as far as this key is concerned.
        if principal.tenant_id is None or match["tenant"] != principal.tenant_slug:
            raise not_found
        with self.db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            project = scope.project(match["project"])
            if project is None:
                raise not_found
            if match["version"]:
                deployment = scope.deployment(project.id, int(match["version"]))
            else:
                deployment = scope.active_deployment(project.id)
            if deployment is None:
                raise NotFound(
                    f"project {match['project']} has no {'such' if match['version'] else 'active'} deployment yet; "
                    "run the pipeline first (POST /v1/projects/{project}/runs)",
                    code="no_deployment",
                )
            try:
                settings = ProjectSettings.load(project.settings)
            except InvalidSetting as exc:
                raise Conflict(
                    f"{exc}: PATCH /v1/projects/{project.slug} with a valid "
                    f"settings.{exc.setting} before asking its model",
                    code="invalid_settings",
                    details={"setting": exc.setting},
                ) from exc
            return Target(
                match["tenant"],
                project.slug,
                settings,
                deployment.version,
                dict(deployment.manifest),
            )

    def _index(self, pstore: ProjectStore, manifest: dict) -> Any:
        """The deployment's retrieval index (hybrid; deployments packaged before the index
        asset existed fall back to lexical search over their chunks)."""
        version = manifest.get("index_version") or manifest["dataset_version"]
        key = (pstore.tenant, pstore.project, version)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
        if manifest.get("index_key"):
            from assets.retrieval.hybrid import load_index

            index: Any = load_index(pstore, manifest["index_key"])
        else:
            index = GroundingIndex(from_jsonl(pstore.get_bytes(manifest["chunks_key"])))
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self._cache_size:
                self._indexes.popitem(last=False)
        return index

    def prepare(
        self,
        target: Target,
        question: str,
        max_tokens: int | None,
        history: Sequence[dict[str, str]] = (),
    ) -> Served:
        """Retrieval, the refusal decision and the prompt for one question (a follow-up is
        read with the conversation before it); the runtime and adapter of the deployment."""
        pstore = ProjectStore(self.store, target.tenant, target.project)
        answering = Answering.for_project(
            self._index(pstore, target.manifest), target.project_settings
        )
        prepared = answering.prepare(question, history)
        spec = RuntimeSpec.from_manifest(target.manifest.get("runtime"))
        if prepared.refusal is not None:
            return Served(prepared, None, None, 0)
        try:
            runtime = get_runtime(spec, resolve_base_model()[1])
            adapter = adapter_ref(
                pstore, target.manifest, spec.kind, get_settings().home / "cache" / "adapters"
            )
        except RuntimeUnavailable as exc:
            raise ServiceUnavailable(
                f"deployment v{target.version} cannot be served by its {spec.kind} runtime: {exc}",
                code="runtime_unavailable",
            ) from exc
        return Served(
            prepared,
            runtime,
            adapter,
            min(max_tokens or DEFAULT_NEW_TOKENS, MAX_NEW_TOKENS),
            (answering.refusal_text, answering.escalation_text),
        )

    def stream(self, served: Served) -> Iterator[str]:
        """The answer's text in pieces (the refusal text in one piece). The generation is
        checked against the evidence before any of it is sent (`compose`), so pieces come once
        it is complete: what a client reads is what it would get without streaming."""
        if served.refusal is not None:
            yield served.refusal
            return
        generated = "".join(
            served.runtime.stream(served.prepared.messages, served.adapter, served.max_new_tokens)
        )
        text = compose(served.prepared, generated, served.refusal_texts)
        for piece in re.split(r"(?<=\s)", text):
            if piece:
                yield piece

    def answer(
        self,
        target: Target,
        question: str,
        max_tokens: int | None,
        history: Sequence[dict[str, str]] = (),
    ) -> Answer:
        started = time.perf_counter()
        served = self.prepare(target, question, max_tokens, history)
        if served.refusal is not None:
            return Answer(
                served.refusal,
                [],
                False,
                0,
                0,
                time.perf_counter() - started,
                served.prepared.confidence,
                served.prepared.refusal_reason,
                served.prepared.query,
            )
        try:
            generation = served.runtime.generate(
                [served.prepared.messages], served.adapter, served.max_new_tokens
            )[0]
        except RuntimeUnavailable as exc:
            raise ServiceUnavailable(str(exc), code="runtime_unavailable") from exc
        return Answer(
            text=compose(served.prepared, generation.text, served.refusal_texts),
            citations=served.citations,
            grounded=True,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            seconds=time.perf_counter() - started,
            confidence=served.prepared.confidence,
            query=served.prepared.query,
        )


def completion_body(model: str, target: Target, answer: Answer) -> dict:
    """The OpenAI chat.completion object, plus our citations."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
        "citations": answer.citations,
        "privatune": {
            "deployment_version": target.version,
            "adapter_version": target.manifest.get("adapter_version"),
            "grounded": answer.grounded,
            "retrieval_confidence": round(answer.confidence, 4),
            "refusal_reason": answer.refusal_reason,
            "retrieval_query": answer.query,
            "runtime": target.runtime,
            "latency_seconds": round(answer.seconds, 3),
        },
    }


def stream_events(
    model: str, target: Target, prepared: Served, pieces: Iterator[str]
) -> Iterator[str]:
    """The OpenAI chat.completion.chunk stream as server-sent events: the role (with our
    citations), the text in pieces, the finish, then `[DONE]`."""
    import json

    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def event(delta: dict, finish: str | None = None, **extra: object) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    yield event(
        {"role": "assistant", "content": ""},
        citations=prepared.citations,
        privatune={
            "deployment_version": target.version,
            "adapter_version": target.manifest.get("adapter_version"),
            "grounded": prepared.refusal is None,
            "retrieval_confidence": round(prepared.prepared.confidence, 4),
            "refusal_reason": prepared.prepared.refusal_reason,
            "retrieval_query": prepared.prepared.query,
        },
    )
    for piece in pieces:
        yield event({"content": piece})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"
