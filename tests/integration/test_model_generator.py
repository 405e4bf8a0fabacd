"""The model-based generator for real: SmolLM2 in this process, and the same model behind a real
HTTP server speaking the OpenAI chat-completions protocol (the path a stronger teacher, vLLM or
Ollama takes). Few tokens, one chunk: the figures that matter are in bench/dataset.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assets.dataset.chunking import Chunk
from assets.dataset.generate import build_examples
from assets.dataset.model_generator import (
    MODEL_GENERATOR,
    GeneratorUnavailable,
    LocalChatClient,
    ModelGenerator,
    ModelGeneratorConfig,
    build_client,
    prompt_for,
)
from assets.dataset.scoring import score_example

pytestmark = pytest.mark.slow

CHUNK = Chunk(
    id="c1",
    document_id="leave",
    filename="annual-leave-policy.docx",
    page=1,
    start=0,
    end=120,
    heading=["Annual leave", "Carry over"],
    text=(
        "Up to five unused days of annual leave carry over to the next year. "
        "Carried-over days must be used by 31 March."
    ),
)
TOKENS = 36


class _Handler(BaseHTTPRequestHandler):
    engine = None
    seen: list[dict] = []

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append({"auth": self.headers.get("authorization"), "body": body})
        generation = self.engine.generate([body["messages"]], max_new_tokens=body["max_tokens"])[0]
        payload = json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": generation.text},
                        "finish_reason": "length",
                    }
                ],
                "usage": {
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "total_tokens": generation.prompt_tokens + generation.completion_tokens,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def openai_server(base_model_path: Path) -> Iterator[str]:
    """An OpenAI-compatible chat-completions server backed by the real local model."""
    from resources.model_runtime import get_engine

    handler = type("Handler", (_Handler,), {"engine": get_engine(base_model_path), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_model_generator_local_and_over_the_openai_protocol(
    base_model_path: Path, openai_server, monkeypatch
):
    url, handler = openai_server
    config = ModelGeneratorConfig(max_new_tokens=TOKENS)
    local = LocalChatClient(base_model_path)
    [pairs] = ModelGenerator(local, config).pairs([CHUNK])
    assert pairs, "no Q/A pair parsed from the model's reply"
    assert all(p.question.endswith("?") and p.answer for p in pairs)
    examples = build_examples([CHUNK], [pairs], f"{MODEL_GENERATOR}:{local.name}")
    assert examples[0].generator.startswith("model-v1:local:")
    assert examples[0].citations == ["c1"]
    assert examples[0].messages[-1] == {"role": "assistant", "content": pairs[0].answer}
    scores = score_example(examples[0], CHUNK.text)
    assert 0.0 <= scores["groundedness"] <= 1.0

    # The same greedy model behind the OpenAI protocol writes the same pairs.
    monkeypatch.setenv("TEACHER_KEY", "sk-test-123")
    remote = build_client(
        ModelGeneratorConfig(
            provider="openai", base_url=f"{url}/v1", model="smollm2", api_key_env="TEACHER_KEY"
        )
    )
    [remote_pairs] = ModelGenerator(remote, config).pairs([CHUNK])
    assert remote_pairs == pairs
    assert handler.seen[-1]["auth"] == "Bearer sk-test-123"
    assert handler.seen[-1]["body"]["model"] == "smollm2"
    assert handler.seen[-1]["body"]["max_tokens"] == TOKENS

    # Ollama serves the same protocol under /v1: its root URL is enough.
    ollama = build_client(ModelGeneratorConfig(provider="ollama", base_url=url, model="smollm2"))
    assert ollama.base_url == f"{url}/v1"
    [start] = ollama.complete([prompt_for(CHUNK)], 3, 0.0)
    assert start.startswith("Q")
    assert handler.seen[-1]["auth"] is None and handler.seen[-1]["body"]["max_tokens"] == 3

    # A wrong path is an error that names the endpoint, not an empty dataset.
    broken = build_client(ModelGeneratorConfig(provider="openai", base_url=url, model="x"))
    with pytest.raises(GeneratorUnavailable, match=url):
        broken.complete([prompt_for(CHUNK)], 4, 0.0)
