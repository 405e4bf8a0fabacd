"""Runtimes `openai` and `ollama`: an upstream server speaking the OpenAI chat-completions
protocol (vLLM, TGI, llama.cpp's server, LiteLLM, a hosted endpoint, or Ollama under `/v1`).

The deployment's adapter is whatever model name the upstream serves it as
(`AdapterRef.upstream_model`, e.g. a vLLM `--lora-modules` name or an Ollama model built from
the adapter); without one, the spec's `model` (the base model as the upstream names it).

Plain httpx, no SDK: one pooled, thread-safe `httpx.Client` per runtime; a batch of
conversations goes out as concurrent requests through a small bounded thread pool. Every
failure (unreachable, timeout, non-2xx, malformed body) is a `RuntimeUnavailable` naming the
upstream URL; the API key, read from the environment at each request, never appears in it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import httpx

from resources.chat_engine import Generation
from resources.runtimes import AdapterRef, RuntimeSpec, RuntimeUnavailable, stripped

_BODY_CHARS = 200


def upstream_base_url(spec: RuntimeSpec) -> str:
    """The upstream's OpenAI `/v1` root: Ollama serves it beside its native `/api`, so its root
    URL is enough; other servers are taken as given."""
    if not spec.base_url:
        raise RuntimeUnavailable(f"runtime {spec.kind} needs base_url (the upstream's /v1)")
    url = spec.base_url.rstrip("/")
    if spec.kind == "ollama" and not url.endswith("/v1"):
        url += "/v1"
    return url


class UpstreamRuntime:
    """Chat completions from an OpenAI-compatible upstream server."""

    def __init__(self, spec: RuntimeSpec, base_model_path: Path | None = None) -> None:
        if spec.kind not in ("openai", "ollama"):
            raise ValueError(f"UpstreamRuntime serves kinds openai and ollama, not {spec.kind}")
        self.kind = spec.kind
        self.spec = spec
        self.base_model_path = base_model_path  # unused: the upstream holds the weights
        self.base_url = upstream_base_url(spec)
        self.endpoint = f"{self.base_url}/chat/completions"
        self.max_concurrency = max(1, spec.max_batch)
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_s),
            limits=httpx.Limits(
                max_connections=self.max_concurrency * 2,
                max_keepalive_connections=self.max_concurrency,
            ),
            headers={"accept": "application/json"},
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------------

    def _model(self, adapter: AdapterRef | None) -> str:
        model = (adapter.upstream_model if adapter else None) or self.spec.model
        if not model:
            what = f"adapter {adapter.name} has no upstream_model and " if adapter else ""
            raise RuntimeUnavailable(
                f"runtime {self.kind} at {self.base_url}: {what}no model name is configured "
                "(set the runtime's `model`, or the adapter's upstream model name)"
            )
        return model

    def _api_key(self) -> str | None:
        name = self.spec.api_key_env
        if not name:
            return None
        key = os.environ.get(name)
        if not key:
            raise RuntimeUnavailable(
                f"runtime {self.kind} at {self.base_url}: the API key variable {name} is not set "
                "in this process's environment"
            )
        return key

    def _headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(
        self, conversation: list[dict[str, str]], model: str, max_new_tokens: int, stream: bool
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": conversation,
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "stream": stream,
        }

    def _fail(self, what: str, key: str | None, cause: BaseException | None = None) -> NoReturn:
        message = f"upstream {self.endpoint} {what}"
        if key:  # an upstream may echo the key back in its error text
            message = message.replace(key, "***")
        raise RuntimeUnavailable(message) from cause

    def _check_status(self, response: httpx.Response, key: str | None) -> None:
        if not 200 <= response.status_code < 300:
            self._fail(f"answered {response.status_code}: {response.text[:_BODY_CHARS]!r}", key)

    def _transport_error(self, exc: httpx.HTTPError, key: str | None) -> NoReturn:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
        self._fail(f"{kind} ({type(exc).__name__}: {exc})", key, exc)

    def _one(
        self, conversation: list[dict[str, str]], model: str, max_new_tokens: int
    ) -> Generation:
        key = self._api_key()
        body = self._body(conversation, model, max_new_tokens, stream=False)
        try:
            response = self._client.post(self.endpoint, json=body, headers=self._headers(key))
        except httpx.HTTPError as exc:
            self._transport_error(exc, key)
        self._check_status(response, key)
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            self._fail(
                f"answered {response.status_code} with a malformed body: "
                f"{response.text[:_BODY_CHARS]!r}",
                key,
                exc,
            )
        return Generation(
            text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix=f"upstream-{self.kind}"
                )
            return self._pool

    # -- ChatRuntime ---------------------------------------------------------------------------

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> list[Generation]:
        """Greedy completions, one request per conversation, at most `max_batch` in flight."""
        model = self._model(adapter)
        self._api_key()  # a missing key fails before any request goes out
        if len(conversations) <= 1:
            return [self._one(c, model, max_new_tokens) for c in conversations]
        pool = self._executor()
        futures: list[Future[Generation]] = [
            pool.submit(self._one, c, model, max_new_tokens) for c in conversations
        ]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:  # after a failure, what has not started need not go out
                f.cancel()

    def stream(
        self,
        conversation: list[dict[str, str]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> Iterator[str]:
        """One completion as text pieces from the upstream's server-sent events; joined, they
        are the text `generate` gives (leading and trailing whitespace dropped)."""
        model = self._model(adapter)
        key = self._api_key()  # configuration errors surface here, not at the first piece
        body = self._body(conversation, model, max_new_tokens, stream=True)
        return stripped(self._pieces(body, key))

    def _pieces(self, body: dict[str, Any], key: str | None) -> Iterator[str]:
        """The raw content pieces of the upstream's event stream."""
        headers = {**self._headers(key), "accept": "text/event-stream"}
        done = finished = False
        try:
            with self._client.stream("POST", self.endpoint, json=body, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    response.read()
                    self._check_status(response, key)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, event:/id: fields
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    piece, finish = self._delta(data, key)
                    finished = finished or finish
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            self._transport_error(exc, key)
        if not (done or finished):
            self._fail("closed the stream before it finished (no [DONE])", key)

    def _delta(self, data: str, key: str | None) -> tuple[str, bool]:
        """(content piece, whether a finish_reason came) of one `chat.completion.chunk`."""
        try:
            event = json.loads(data)
            if "error" in event:
                self._fail(f"sent an error in the stream: {data[:_BODY_CHARS]!r}", key)
            choices = event.get("choices") or []
            if not choices:  # e.g. the closing usage chunk
                return "", False
            delta = choices[0].get("delta") or {}
            piece = delta.get("content") or ""
            if not isinstance(piece, str):
                raise TypeError("content is not a string")
            return piece, bool(choices[0].get("finish_reason"))
        except (ValueError, TypeError, AttributeError) as exc:
            self._fail(f"sent a malformed stream event: {data[:_BODY_CHARS]!r}", key, exc)

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        self._client.close()

    def __enter__(self) -> UpstreamRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
