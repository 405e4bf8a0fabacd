"""Model-based instruction generation: a generator model writes question/answer pairs grounded
in a chunk, several phrasings per fact.

The model is reached through `ChatClient`: the project's base model in this process
(`LocalChatClient`, the default), or any server speaking the OpenAI chat-completions protocol
(`OpenAIChatClient`: vLLM, llama.cpp, LiteLLM, a hosted teacher, or Ollama at `/v1`), so a
project can use a stronger teacher without code changes."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from assets.dataset.chunking import Chunk
from assets.dataset.generate import QAPair, document_name
from resources.project_settings import DEFAULT_PROVIDER, GeneratorModel
from resources.project_settings import PROVIDERS as PROVIDERS

MODEL_GENERATOR = "model-v1"
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434/v1"

_SYSTEM = (
    "You write question and answer pairs about a passage for a company assistant. "
    "Every answer must be stated in the passage. Ask about each fact in two different ways. "
    "Reply only with lines 'Q: <question>' and 'A: <answer>'."
)
# One worked example: small models follow a demonstrated format far better than a described one.
_SHOT_PASSAGE = (
    "From the visitor policy, section Reception:\n"
    "The office opens at 8:00 and closes at 18:00. Visitors sign in at reception."
)
_SHOT_REPLY = (
    "Q: When does the office open?\nA: The office opens at 8:00.\n"
    "Q: What time does the office open in the morning?\nA: At 8:00.\n"
    "Q: Where do visitors sign in?\nA: Visitors sign in at reception."
)
_Q = re.compile(r"^\W*(?:Q|Question)\s*\d*\s*[:.)]\s*(.+)$", re.I)
_A = re.compile(r"^\W*(?:A|Answer)\s*\d*\s*[:.)]\s*(.+)$", re.I)


class ChatClient(Protocol):
    """Chat completions for a batch of conversations."""

    name: str

    def complete(
        self, conversations: Sequence[list[dict[str, str]]], max_tokens: int, temperature: float
    ) -> list[str]: ...


class LocalChatClient:
    """The project's base model (or any local Hugging Face folder), loaded once per process."""

    def __init__(self, model_path: Any, batch_size: int = 8) -> None:
        from resources.model_runtime import get_engine

        self.engine = get_engine(model_path)
        self.name = f"local:{getattr(model_path, 'name', model_path)}"
        self.batch_size = batch_size

    def complete(
        self, conversations: Sequence[list[dict[str, str]]], max_tokens: int, temperature: float
    ) -> list[str]:
        # The engine decodes greedily; temperature only matters for remote teachers.
        generations = self.engine.generate(
            list(conversations), max_new_tokens=max_tokens, batch_size=self.batch_size
        )
        return [g.text for g in generations]


class GeneratorUnavailable(RuntimeError):
    """The configured generator endpoint cannot be reached or answered with an error."""


class OpenAIChatClient:
    """Any server speaking the OpenAI chat-completions protocol (`POST {base_url}/chat/completions`)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.name = f"openai:{model}"

    def _one(self, client: Any, messages: list[dict[str, str]], max_tokens: int, t: float) -> str:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": t,
            "stream": False,
        }
        last: Exception | None = None
        for _ in range(self.retries + 1):
            try:
                response = client.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.HTTPError as exc:
                last = exc
                continue
            if response.status_code >= 500 or response.status_code == 429:
                last = GeneratorUnavailable(f"{response.status_code}: {response.text[:200]}")
                continue
            if response.status_code != 200:
                raise GeneratorUnavailable(
                    f"generator endpoint {self.base_url} answered {response.status_code}: "
                    f"{response.text[:300]}"
                )
            choices = response.json().get("choices") or []
            if not choices:
                return ""
            return str((choices[0].get("message") or {}).get("content") or "")
        raise GeneratorUnavailable(f"generator endpoint {self.base_url} failed: {last}")

    def complete(
        self, conversations: Sequence[list[dict[str, str]]], max_tokens: int, temperature: float
    ) -> list[str]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            return [self._one(client, c, max_tokens, temperature) for c in conversations]


@dataclass(frozen=True)
class ModelGeneratorConfig:
    """The project's `generator_model` setting, with defaults for its unset fields."""

    provider: str = DEFAULT_PROVIDER
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    max_chunks: int | None = None
    max_new_tokens: int = 160
    temperature: float = 0.0
    timeout_s: float = 120.0

    @classmethod
    def from_settings(cls, value: GeneratorModel | dict | None) -> ModelGeneratorConfig:
        """From the setting, or from its `describe()` form (a dataset manifest's)."""
        value = (
            msgspec.structs.asdict(value)
            if isinstance(value, GeneratorModel)
            else dict(value or {})
        )
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)

    def describe(self) -> dict[str, Any]:
        """For the manifest: everything but secrets (the key's variable name only)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "max_chunks": self.max_chunks,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }


def build_client(config: ModelGeneratorConfig, base_model_path: Any = None) -> ChatClient:
    """The client the config names; secrets come from the environment at run time."""
    if config.provider == "local":
        return LocalChatClient(config.model or base_model_path)
    if config.provider not in PROVIDERS:
        raise ValueError(f"unknown generator provider {config.provider!r}")
    if not config.model:
        raise ValueError(f"generator provider {config.provider} needs a model name")
    base_url = config.base_url or (OLLAMA_DEFAULT_URL if config.provider == "ollama" else None)
    if not base_url:
        raise ValueError("generator provider openai needs a base_url")
    if config.provider == "ollama" and not base_url.rstrip("/").endswith("/v1"):
        # Ollama serves the OpenAI protocol under /v1 beside its native /api.
        base_url = base_url.rstrip("/") + "/v1"
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    return OpenAIChatClient(base_url, config.model, api_key, timeout=config.timeout_s)


def prompt_for(chunk: Chunk) -> list[dict[str, str]]:
    where = document_name(chunk.filename)
    if chunk.heading:
        where += f", section {chunk.heading[-1]}"
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _SHOT_PASSAGE},
        {"role": "assistant", "content": _SHOT_REPLY},
        {"role": "user", "content": f"From the {where}:\n{chunk.text}"},
    ]


def parse_pairs(text: str) -> list[QAPair]:
    """`Q: ... / A: ...` lines into pairs; unanswered, empty and repeated questions dropped."""
    pairs: list[QAPair] = []
    seen: set[str] = set()
    question: str | None = None
    for line in text.splitlines():
        q = _Q.match(line.strip())
        if q:
            question = q.group(1).strip()
            continue
        a = _A.match(line.strip())
        if a and question:
            answer = a.group(1).strip()
            key = _key(question)
            if answer and key and key not in seen and question.endswith("?"):
                seen.add(key)
                pairs.append(QAPair(question, answer, "generated"))
            question = None
    return pairs


class ModelGenerator:
    """Asks a chat model for question/answer pairs per chunk (several phrasings per fact)."""

    name = MODEL_GENERATOR

    def __init__(self, client: ChatClient, config: ModelGeneratorConfig | None = None) -> None:
        self.client = client
        self.config = config or ModelGeneratorConfig()
        self.name = f"{MODEL_GENERATOR}:{client.name}"

    def pairs(self, chunks: Sequence[Chunk]) -> list[list[QAPair]]:
        replies = self.client.complete(
            [prompt_for(c) for c in chunks], self.config.max_new_tokens, self.config.temperature
        )
        # Small models sometimes repeat the worked example instead of reading the passage.
        return [[p for p in parse_pairs(reply) if not _copies_shot(p)] for reply in replies]


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


_SHOT = parse_pairs(_SHOT_REPLY)
_SHOT_KEYS = frozenset(_key(p.question) for p in _SHOT) | frozenset(_key(p.answer) for p in _SHOT)


def _copies_shot(pair: QAPair) -> bool:
    return _key(pair.question) in _SHOT_KEYS or _key(pair.answer) in _SHOT_KEYS
