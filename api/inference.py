"""Grounded answers from a project's active (or pinned) deployment."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from api.auth import Principal
from api.errors import BadRequest, NotFound
from assets.dataset.assets import from_jsonl
from assets.dataset.prompt import DEFAULT_REFUSAL, DEFAULT_SYSTEM_PROMPT
from assets.deployment.artifacts import local_adapter_dir
from assets.retrieval.grounding import GroundingIndex, grounded_messages
from resources.database import Database
from resources.model_runtime import get_engine, resolve_base_model
from resources.object_store import ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.settings import get_settings

_MODEL = re.compile(r"^(?P<tenant>[a-z0-9-]+)/(?P<project>[a-z0-9-]+)(?:@(?P<version>\d+))?$")
MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class Target:
    tenant: str
    project: str
    project_settings: dict
    version: int
    manifest: dict


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[dict]
    grounded: bool
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class Prepared:
    messages: list[dict[str, str]]
    refusal: str | None  # low retrieval confidence: this text instead of a generation
    citations: list[dict]
    adapter_dir: Path | None
    max_new_tokens: int


class InferenceService:
    def __init__(self, db: Database, store: ObjectStore, index_cache_size: int = 32) -> None:
        self.db = db
        self.store = store
        self._indexes: OrderedDict[tuple[str, str, str], GroundingIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = index_cache_size

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
        if match["tenant"] != principal.tenant_slug:
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
            return Target(
                principal.tenant_slug,
                project.slug,
                dict(project.settings or {}),
                deployment.version,
                dict(deployment.manifest),
            )

    def _index(self, pstore: ProjectStore, manifest: dict) -> GroundingIndex:
        key = (pstore.tenant, pstore.project, manifest["dataset_version"])
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
        index = GroundingIndex(from_jsonl(pstore.get_bytes(manifest["chunks_key"])))
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self._cache_size:
                self._indexes.popitem(last=False)
        return index

    def prepare(self, target: Target, question: str, max_tokens: int | None) -> Prepared:
        """Retrieval and prompt for one question: what `answer` and `stream` generate from."""
        pstore = ProjectStore(self.store, target.tenant, target.project)
        retrieved = self._index(pstore, target.manifest).retrieve(question, k=3)
        if not retrieved:
            refusal = target.project_settings.get("refusal_text") or DEFAULT_REFUSAL
            return Prepared([], refusal, [], None, 0)
        system_prompt = target.project_settings.get("system_prompt") or DEFAULT_SYSTEM_PROMPT
        adapter_dir = local_adapter_dir(
            pstore, target.manifest, get_settings().home / "cache" / "adapters"
        )
        return Prepared(
            grounded_messages(question, retrieved, system_prompt),
            None,
            [r.citation() for r in retrieved],
            adapter_dir,
            min(max_tokens or 160, MAX_NEW_TOKENS),
        )

    def stream(self, prepared: Prepared) -> Iterator[str]:
        """The answer's text as it is generated (the refusal text in one piece)."""
        if prepared.refusal is not None:
            yield prepared.refusal
            return
        engine = get_engine(resolve_base_model()[1])
        yield from engine.stream(prepared.messages, prepared.adapter_dir, prepared.max_new_tokens)

    def answer(self, target: Target, question: str, max_tokens: int | None) -> Answer:
        started = time.perf_counter()
        prepared = self.prepare(target, question, max_tokens)
        if prepared.refusal is not None:
            return Answer(prepared.refusal, [], False, 0, 0, time.perf_counter() - started)
        engine = get_engine(resolve_base_model()[1])
        generation = engine.generate(
            [prepared.messages], prepared.adapter_dir, max_new_tokens=prepared.max_new_tokens
        )[0]
        return Answer(
            text=generation.text,
            citations=prepared.citations,
            grounded=True,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            seconds=time.perf_counter() - started,
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
            "latency_seconds": round(answer.seconds, 3),
        },
    }


def stream_events(
    model: str, target: Target, prepared: Prepared, pieces: Iterator[str]
) -> Iterator[str]:
    """The OpenAI chat.completion.chunk stream as server-sent events: the role (with our
    citations), the text as it is generated, the finish, then `[DONE]`."""
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
        },
    )
    for piece in pieces:
        yield event({"content": piece})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"
