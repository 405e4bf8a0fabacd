"""Serving runtimes behind one interface, chosen per deployment.

A deployment's manifest carries a `runtime` block (`RuntimeSpec`); `get_runtime(spec)` gives the
process's runtime for it (loaded once, shared by every tenant whose deployment uses the same
base model), and every runtime answers the same two calls:

- `generate(conversations, adapter, max_new_tokens)`: greedy completions, one per conversation;
- `stream(conversation, adapter, max_new_tokens)`: one completion as text pieces, as generated.

`adapter` says where the deployment's adapter is in the form that runtime reads (a PEFT folder
for transformers, a GGUF LoRA file for llama.cpp, an upstream model name for Ollama and
OpenAI-compatible servers such as vLLM), or None for the bare base model.

Kinds:
- `transformers`: one base model in memory, many tenants' PEFT adapters swapped per request,
  concurrent requests batched (resources/runtimes/transformers_runtime.py);
- `llama_cpp`: llama-cpp-python on the base GGUF plus the adapter exported to GGUF LoRA by our
  packaging step (resources/runtimes/llama_cpp_runtime.py);
- `ollama` and `openai`: an upstream server speaking the OpenAI chat-completions protocol
  (resources/runtimes/upstream.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from resources.chat_engine import Generation
from resources.project_settings import DEFAULT_RUNTIME_KIND
from resources.project_settings import RUNTIME_KINDS as RUNTIME_KINDS


class RuntimeUnavailable(RuntimeError):
    """The runtime a deployment asks for cannot serve here (not installed, unreachable, no
    artefact in the form it reads); the message says what to change."""


@dataclass(frozen=True)
class RuntimeSpec:
    """How a deployment is served (the manifest's `runtime` block)."""

    kind: str = DEFAULT_RUNTIME_KIND
    device: str = "cpu"
    # ollama / openai: the upstream server and the model name it serves this deployment as
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the upstream key
    timeout_s: float = 120.0
    # llama_cpp: threads (None: all cores) and context size
    n_threads: int | None = None
    n_ctx: int = 4096
    # transformers: how many concurrent requests one generation pass may batch
    max_batch: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in RUNTIME_KINDS:
            raise ValueError(f"runtime kind {self.kind!r} is not one of {', '.join(RUNTIME_KINDS)}")
        if self.kind in ("ollama", "openai") and not self.base_url:
            raise ValueError(f"runtime {self.kind} needs base_url (the upstream server's /v1)")

    @classmethod
    def from_manifest(cls, block: dict | None) -> RuntimeSpec:
        return cls(**(block or {}))

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}


@dataclass(frozen=True)
class AdapterRef:
    """A deployment's adapter in every form a runtime may read."""

    name: str  # stable id: <tenant>/<project>/<adapter_version>
    peft_dir: Path | None = None  # transformers: PEFT folder (adapter_config.json + safetensors)
    gguf_lora: Path | None = None  # llama_cpp: GGUF LoRA file
    upstream_model: str | None = None  # ollama / openai: the name the upstream serves it as


class ChatRuntime(Protocol):
    kind: str

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> list[Generation]: ...

    def stream(
        self,
        conversation: list[dict[str, str]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> Iterator[str]: ...


def stripped(pieces: Iterable[str]) -> Iterator[str]:
    """Text pieces as a stream whose join equals the stripped whole: leading whitespace dropped,
    trailing whitespace held back until more text follows it."""
    started = False
    pending = ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        text = pending + piece
        head = text.rstrip()
        pending = text[len(head) :]
        if head:
            yield head


_factories: dict[str, Callable[[RuntimeSpec, Path], ChatRuntime]] = {}
_runtimes: dict[tuple[str, str], ChatRuntime] = {}
_lock = threading.Lock()


def _factory(kind: str) -> Callable[[RuntimeSpec, Path], ChatRuntime]:
    if kind == "transformers":
        from resources.runtimes.transformers_runtime import TransformersRuntime

        return TransformersRuntime
    if kind == "llama_cpp":
        from resources.runtimes.llama_cpp_runtime import LlamaCppRuntime

        return LlamaCppRuntime
    from resources.runtimes.upstream import UpstreamRuntime

    return UpstreamRuntime


def get_runtime(spec: RuntimeSpec, base_model_path: Path) -> ChatRuntime:
    """The process's runtime for this spec and base model (created once per distinct spec: two
    deployments with the same upstream but other keys or model names get their own)."""
    import json

    key = (str(base_model_path), json.dumps(spec.describe(), sort_keys=True, default=str))
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _factory(spec.kind)(spec, base_model_path)
            _runtimes[key] = runtime
        return runtime
