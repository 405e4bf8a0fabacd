"""The `openai` and `ollama` runtimes against a real OpenAI-compatible server backed by the real
SmolLM2 (tests/openai_server.py): the same text as the engine itself, whole and streamed, the
bearer key sent and never leaked, and every upstream failure a clear RuntimeUnavailable."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from resources.model_runtime import ChatEngine, get_engine
from resources.runtimes import AdapterRef, RuntimeSpec, RuntimeUnavailable
from resources.runtimes.upstream import UpstreamRuntime
from tests.openai_server import serve_openai

pytestmark = pytest.mark.slow

TOKENS = 12
KEY = "sk-upstream-test-7f3a9c"
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a colour of the sky."},
    ],
    [{"role": "user", "content": "How many days are in a week?"}],
]


@pytest.fixture(scope="module")
def engine(base_model_path: Path) -> ChatEngine:
    return get_engine(base_model_path)


@pytest.fixture(scope="module")
def expected(engine: ChatEngine) -> list:
    """What the engine gives for each conversation on its own (as the server runs them)."""
    return [engine.generate([c], None, max_new_tokens=TOKENS)[0] for c in CONVERSATIONS]


@pytest.fixture(scope="module")
def server(engine: ChatEngine) -> Iterator[tuple[str, list[dict]]]:
    """The real model behind the OpenAI protocol, with a bearer key and an alias `acme-v1`."""
    with serve_openai(engine, token=KEY, models={"base": None, "acme-v1": None}) as served:
        yield served


@pytest.fixture
def runtime(server, monkeypatch: pytest.MonkeyPatch) -> Iterator[UpstreamRuntime]:
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    spec = RuntimeSpec(
        kind="openai", base_url=server[0], model="base", api_key_env="UPSTREAM_KEY", max_batch=3
    )
    with UpstreamRuntime(spec, None) as rt:
        yield rt


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_generate_matches_the_engine(runtime: UpstreamRuntime, server, expected) -> None:
    _, seen = server
    before = len(seen)
    assert runtime.generate(CONVERSATIONS, None, TOKENS) == expected
    requests = seen[before:]
    assert len(requests) == len(CONVERSATIONS)  # one request per conversation
    assert sorted(r["body"]["messages"][-1]["content"] for r in requests) == sorted(
        c[-1]["content"] for c in CONVERSATIONS
    )
    for r in requests:
        assert r["path"] == "/v1/chat/completions"
        assert r["auth"] == f"Bearer {KEY}"
        assert r["body"]["model"] == "base"
        assert r["body"]["max_tokens"] == TOKENS
        assert r["body"]["temperature"] == 0
        assert r["body"]["stream"] is False
    assert runtime.generate([], None, TOKENS) == []

    # The adapter's upstream name wins over the runtime's model.
    adapter = AdapterRef(name="acme/handbook/v1", upstream_model="acme-v1")
    [one] = runtime.generate(CONVERSATIONS[:1], adapter, TOKENS)
    assert one == expected[0]
    assert seen[-1]["body"]["model"] == "acme-v1"


def test_stream_joined_is_generate(runtime: UpstreamRuntime, server, expected) -> None:
    _, seen = server
    pieces = list(runtime.stream(CONVERSATIONS[0], None, TOKENS))
    assert len(pieces) > 1  # piece by piece, not in one go
    assert "".join(pieces) == expected[0].text
    assert seen[-1]["body"]["stream"] is True and seen[-1]["auth"] == f"Bearer {KEY}"
    # a reader that stops early leaves the runtime (and its pooled connections) usable
    stream = runtime.stream(CONVERSATIONS[1], None, TOKENS)
    next(stream)
    stream.close()
    assert "".join(runtime.stream(CONVERSATIONS[1], None, TOKENS)) == expected[1].text


def test_api_key_missing_or_wrong(server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = server
    monkeypatch.delenv("UPSTREAM_MISSING_KEY", raising=False)
    spec = RuntimeSpec(
        kind="openai", base_url=url, model="base", api_key_env="UPSTREAM_MISSING_KEY"
    )
    before = len(seen)
    with UpstreamRuntime(spec, None) as rt:
        with pytest.raises(RuntimeUnavailable, match="UPSTREAM_MISSING_KEY.*not set"):
            rt.generate(CONVERSATIONS[:1], None, TOKENS)
        with pytest.raises(RuntimeUnavailable, match="UPSTREAM_MISSING_KEY"):
            rt.stream(CONVERSATIONS[0], None, TOKENS)
    assert len(seen) == before  # nothing went out without the key

    wrong = "sk-wrong-key-0000"
    monkeypatch.setenv("UPSTREAM_WRONG_KEY", wrong)
    spec = RuntimeSpec(kind="openai", base_url=url, model="base", api_key_env="UPSTREAM_WRONG_KEY")
    with UpstreamRuntime(spec, None) as rt:
        with pytest.raises(RuntimeUnavailable, match="401") as info:
            rt.generate(CONVERSATIONS[:1], None, TOKENS)
        assert url in str(info.value) and "invalid_api_key" in str(info.value)
        assert wrong not in str(info.value)
        with pytest.raises(RuntimeUnavailable, match="401"):
            list(rt.stream(CONVERSATIONS[0], None, TOKENS))
    assert seen[-1]["auth"] == f"Bearer {wrong}"


def test_unknown_model_is_a_404(runtime: UpstreamRuntime, server) -> None:
    adapter = AdapterRef(name="acme/handbook/v9", upstream_model="acme-v9")
    with pytest.raises(RuntimeUnavailable, match="404") as info:
        runtime.generate(CONVERSATIONS, adapter, TOKENS)
    message = str(info.value)
    assert server[0] in message and "model_not_found" in message and KEY not in message
    with pytest.raises(RuntimeUnavailable, match="404.*model_not_found"):
        list(runtime.stream(CONVERSATIONS[0], adapter, TOKENS))

    # No model name anywhere: said before any request.
    spec = RuntimeSpec(kind="openai", base_url=server[0])
    with UpstreamRuntime(spec, None) as rt, pytest.raises(RuntimeUnavailable, match="no model"):
        rt.generate(CONVERSATIONS[:1], AdapterRef(name="acme/handbook/v1"), TOKENS)


def test_unreachable_upstream_fails_fast_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    spec = RuntimeSpec(
        kind="openai", base_url=url, model="base", api_key_env="UPSTREAM_KEY", timeout_s=2.0
    )
    with UpstreamRuntime(spec, None) as rt:
        start = time.monotonic()
        with pytest.raises(RuntimeUnavailable, match="unreachable") as info:
            rt.generate(CONVERSATIONS, None, TOKENS)
        with pytest.raises(RuntimeUnavailable, match="unreachable") as streamed:
            list(rt.stream(CONVERSATIONS[0], None, TOKENS))
        assert time.monotonic() - start < 5
    for exc in (info.value, streamed.value):
        assert url in str(exc) and KEY not in str(exc)


def test_ollama_speaks_the_same_v1(engine: ChatEngine, expected) -> None:
    with serve_openai(engine) as (url, seen):  # Ollama: no key
        root = url.removesuffix("/v1")
        for base_url in (url, root):  # its root URL is enough: /v1 is added
            spec = RuntimeSpec(kind="ollama", base_url=base_url, model="base")
            with UpstreamRuntime(spec, None) as rt:
                assert rt.base_url == url
                assert rt.generate(CONVERSATIONS[:2], None, TOKENS) == expected[:2]
                assert "".join(rt.stream(CONVERSATIONS[0], None, TOKENS)) == expected[0].text
        assert {r["path"] for r in seen} == {"/v1/chat/completions"}
        assert all(r["auth"] is None for r in seen)


class _Broken(BaseHTTPRequestHandler):
    """An upstream that answers badly: a 500 with a long body, or 200 with no JSON."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        if self.path.startswith("/v1/"):  # /v1/... : a long error page echoing the key
            status, body = 500, ("Internal error for " + self.headers["authorization"]) + "x" * 999
        else:  # /ok/v1/... : 200 and not JSON
            status, body = 200, "<html>hello</html>"
        data = body.encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_error_and_malformed_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        spec = RuntimeSpec(
            kind="openai", base_url=f"{root}/v1", model="m", api_key_env="UPSTREAM_KEY"
        )
        with UpstreamRuntime(spec, None) as rt:
            with pytest.raises(RuntimeUnavailable, match="answered 500") as info:
                rt.generate(CONVERSATIONS[:1], None, TOKENS)
            message = str(info.value)
            assert KEY not in message and "Bearer ***" in message
            assert len(message) < 400  # the body's first 200 characters only
            with pytest.raises(RuntimeUnavailable, match="answered 500"):
                list(rt.stream(CONVERSATIONS[0], None, TOKENS))
        spec = RuntimeSpec(kind="openai", base_url=f"{root}/ok/v1", model="m")
        with UpstreamRuntime(spec, None) as rt:
            with pytest.raises(RuntimeUnavailable, match="malformed body.*<html>"):
                rt.generate(CONVERSATIONS[:1], None, TOKENS)
            with pytest.raises(RuntimeUnavailable, match="before it finished"):
                list(rt.stream(CONVERSATIONS[0], None, TOKENS))
    finally:
        server.shutdown()
        server.server_close()
