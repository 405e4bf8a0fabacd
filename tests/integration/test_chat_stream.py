"""The engine's streamed generation gives the same text as its whole-answer generation, with
and without an adapter, and leaves the engine usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.model_runtime import get_engine

pytestmark = pytest.mark.slow

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_stream_matches_generate(base_model_path: Path) -> None:
    engine = get_engine(base_model_path)
    whole = engine.generate([CONVERSATION], None, max_new_tokens=16)[0].text
    pieces = list(engine.stream(CONVERSATION, None, max_new_tokens=16))
    assert len(pieces) > 1  # token by token, not in one piece
    assert "".join(pieces).strip() == whole
    # a reader that stops early does not leave the engine locked
    stream = engine.stream(CONVERSATION, None, max_new_tokens=16)
    next(stream)
    stream.close()
    assert engine.generate([CONVERSATION], None, max_new_tokens=4)[0].text
