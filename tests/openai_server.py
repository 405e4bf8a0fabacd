"""A real OpenAI-compatible chat-completions server for tests, backed by the real ChatEngine.

`serve_openai(engine)` runs it on 127.0.0.1 (a free port) for the length of a `with` block and
gives `(base_url, seen)`: `base_url` is the server's `/v1` root (what an OpenAI client or a
`RuntimeSpec.base_url` takes) and `seen` the requests it received, in order, as
`{"method", "path", "auth", "body"}`.

What it speaks, as vLLM and Ollama do:
- `GET /v1/models`;
- `POST /v1/chat/completions`, greedy, `max_tokens` new tokens, whole (`chat.completion`) or
  streamed (`"stream": true`: server-sent `chat.completion.chunk` events, one per text piece,
  then a chunk with `finish_reason`, then `data: [DONE]`; no usage chunk), over HTTP/1.1 with
  keep-alive;
- model names from `models` (default: `"base"`, the bare base model; a name may map to a PEFT
  adapter folder); any other name is a 404 `model_not_found`;
- with `token`, a request without `Authorization: Bearer <token>` is a 401 `invalid_api_key`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_MODELS: dict[str, Path | None] = {"base": None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers; streams are chunked
    engine: Any = None
    token: str | None = None
    models: Mapping[str, Path | None] = DEFAULT_MODELS
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    # -- helpers -------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        self._json(
            status, {"error": {"message": message, "type": type_, "param": None, "code": code}}
        )

    def _authorised(self) -> bool:
        if self.token is None or self.headers.get("authorization") == f"Bearer {self.token}":
            return True
        self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return False

    def _record(self, body: Any) -> None:
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("authorization"),
                "body": body,
            }
        )

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(None)
        if self.path != "/v1/models":
            self._error(404, f"no route {self.path}", "invalid_request_error")
            return
        if not self._authorised():
            return
        data = [{"id": m, "object": "model", "owned_by": "privatune-test"} for m in self.models]
        self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self._record(body)
        if self.path != "/v1/chat/completions":
            self._error(404, f"no route {self.path}", "invalid_request_error")
            return
        if not self._authorised():
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "body must be a JSON object with messages", "invalid_request_error")
            return
        model = body.get("model")
        if model not in self.models:
            self._error(
                404,
                f"The model `{model}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
            return
        adapter_dir = self.models[model]
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 96)
        if body.get("stream"):
            self._stream(body, model, adapter_dir, max_tokens)
            return
        generation = self.engine.generate(
            [body["messages"]], adapter_dir, max_new_tokens=max_tokens
        )[0]
        finish = "length" if generation.completion_tokens >= max_tokens else "stop"
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": generation.text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "total_tokens": generation.prompt_tokens + generation.completion_tokens,
                },
            },
        )

    def _stream(
        self, body: dict[str, Any], model: str, adapter_dir: Path | None, max_tokens: int
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())

        def send(data: str) -> None:
            event = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict[str, Any], finish: str | None) -> None:
            event = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            send(json.dumps(event))

        chunk({"role": "assistant", "content": ""}, None)
        from resources.runtimes import AdapterRef, RuntimeSpec, get_runtime

        runtime = get_runtime(RuntimeSpec(), self.engine.model_path)
        adapter = AdapterRef(str(adapter_dir), peft_dir=adapter_dir) if adapter_dir else None
        for piece in runtime.stream(body["messages"], adapter, max_new_tokens=max_tokens):
            chunk({"content": piece}, None)
        chunk({}, "stop")  # the runtime's stream does not say whether it hit max_tokens
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def serve_openai(
    engine: Any,
    token: str | None = None,
    models: Mapping[str, Path | None] | None = None,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve `engine` over the OpenAI chat-completions protocol on 127.0.0.1 while the block
    runs; gives (base_url ending in /v1, the list of requests seen)."""
    seen: list[dict[str, Any]] = []
    handler = type(
        "OpenAIHandler",
        (_Handler,),
        {
            "engine": engine,
            "token": token,
            "models": dict(models if models is not None else DEFAULT_MODELS),
            "seen": seen,
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="openai-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
