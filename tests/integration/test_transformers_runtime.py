"""The transformers runtime for real (SmolLM2 and PEFT LoRA adapters): concurrent requests are
batched, a batch may mix tenants' adapters and the bare base model without any request seeing
another's adapter, and streamed text equals the generated text."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from resources.model_runtime import get_engine
from resources.runtimes import AdapterRef, RuntimeSpec
from resources.runtimes.transformers_runtime import TransformersRuntime

pytestmark = pytest.mark.slow

TOKENS = 12
QUESTIONS = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?"]


def _conversation(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def make_adapter(base_model_path: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random non-zero weights (so it changes the output), saved by PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.4)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(base_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> list[AdapterRef]:
    root = tmp_path_factory.mktemp("adapters")
    return [
        AdapterRef(f"t{i}/p/v1", peft_dir=make_adapter(base_model_path, root / f"a{i}", seed=i))
        for i in (1, 2)
    ]


@pytest.fixture(scope="module")
def runtime(base_model_path: Path) -> TransformersRuntime:
    return TransformersRuntime(RuntimeSpec(max_batch=8), base_model_path)


def test_mixed_batch_equals_each_alone(runtime, adapters, base_model_path):
    engine = get_engine(base_model_path)
    alone = {
        None: engine.generate([_conversation(QUESTIONS[0])], None, TOKENS)[0].text,
        **{
            a.name: engine.generate([_conversation(QUESTIONS[0])], a.peft_dir, TOKENS)[0].text
            for a in adapters
        },
    }
    assert len(set(alone.values())) == 3, "each adapter must change the answer for this test"
    # Concurrent requests for the base model and both adapters: served in shared passes.
    results: dict = {}
    passes_before = runtime.passes

    def ask(adapter: AdapterRef | None) -> None:
        results[adapter.name if adapter else None] = runtime.generate(
            [_conversation(QUESTIONS[0])], adapter, TOKENS
        )[0].text

    threads = [threading.Thread(target=ask, args=(a,)) for a in (None, *adapters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone
    # One list of conversations is one pass; three concurrent callers needed at most three.
    assert runtime.passes - passes_before <= 3
    mixed = runtime.generate([_conversation(q) for q in QUESTIONS], adapters[0], TOKENS)
    assert runtime.largest_batch >= 3
    assert mixed[0].text == alone[adapters[0].name]


def test_stream_equals_generate(runtime, adapters):
    for adapter in (None, adapters[1]):
        generated = runtime.generate([_conversation(QUESTIONS[1])], adapter, TOKENS)[0]
        pieces = list(runtime.stream(_conversation(QUESTIONS[1]), adapter, TOKENS))
        assert len(pieces) > 1
        assert "".join(pieces) == generated.text
        assert generated.completion_tokens <= TOKENS


def test_rows_stop_at_their_own_limit(runtime):
    short, long = (
        runtime.generate([_conversation(QUESTIONS[1]), _conversation(QUESTIONS[1])], None, 4),
        runtime.generate([_conversation(QUESTIONS[1])], None, TOKENS),
    )
    assert all(g.completion_tokens <= 4 for g in short)
    assert long[0].text.startswith(short[0].text)


def test_adapter_without_peft_folder_is_refused(runtime):
    from resources.runtimes import RuntimeUnavailable

    with pytest.raises(RuntimeUnavailable, match="no PEFT folder"):
        runtime.generate([_conversation("hi")], AdapterRef("t/p/v", gguf_lora=Path("x.gguf")))


def test_a_reader_that_stops_early_leaves_the_runtime_usable(runtime):
    stream = runtime.stream(_conversation(QUESTIONS[0]), None, TOKENS)
    next(stream)
    stream.close()
    assert runtime.generate([_conversation(QUESTIONS[2])], None, 4)[0].text
