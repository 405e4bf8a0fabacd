"""The metric functions the API calls: counts, outcomes and labels that carry no tenant data."""

from __future__ import annotations

import time

import pytest

from resources.metrics import (
    REGISTRY,
    count_upload,
    observe_chat,
    observe_http,
    observed_stream,
    render,
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_chat_counts_completions_tokens_and_latency_by_runtime():
    labels = {"runtime": "llama_cpp", "stream": "false", "outcome": "answered"}
    before = sample("privatune_chat_completions_total", **labels)
    prompt = sample("privatune_chat_tokens_total", runtime="llama_cpp", kind="prompt")
    observe_chat("llama_cpp", 120, 30, 0.8, False, "answered")
    assert sample("privatune_chat_completions_total", **labels) == before + 1
    assert sample("privatune_chat_tokens_total", runtime="llama_cpp", kind="prompt") == prompt + 120
    assert (
        sample(
            "privatune_chat_duration_seconds_bucket", runtime="llama_cpp", stream="false", le="1.0"
        )
        >= 1
    )


def test_a_stream_is_observed_when_it_ends():
    def outcome(name: str) -> float:
        return sample(
            "privatune_chat_completions_total", runtime="transformers", stream="true", outcome=name
        )

    answered, aborted, error = outcome("answered"), outcome("aborted"), outcome("error")
    pieces = observed_stream(iter(["a ", "b"]), "transformers", False, time.perf_counter())
    assert outcome("answered") == answered  # nothing yet: the stream has not been read
    assert "".join(pieces) == "a b"
    assert outcome("answered") == answered + 1

    left = observed_stream(iter(["a ", "b"]), "transformers", False, time.perf_counter())
    next(left)
    left.close()  # the client went away
    assert outcome("aborted") == aborted + 1

    def failing():
        yield "a"
        raise RuntimeError("runtime died")

    broken = observed_stream(failing(), "transformers", False, time.perf_counter())
    with pytest.raises(RuntimeError):
        list(broken)
    assert outcome("error") == error + 1


def test_labels_never_take_free_text():
    observe_chat("acme-secret-runtime", 1, 1, 0.1, False, "answered")
    observe_http("BREW", "/health", 405, 0.001)
    count_upload("acme's custom outcome")
    text = render().decode()
    assert "acme" not in text and "BREW" not in text
    assert (
        sample("privatune_http_requests_total", method="other", route="/health", status="405") >= 1
    )
    assert sample("privatune_uploads_total", outcome="other") >= 1
