"""The llama.cpp runtime with LoRA adapters exported by our own code, against transformers+PEFT.

Real llama.cpp (llama-cpp-python) on the packaged SmolLM2 Q4_1 GGUF; the Hugging Face folder
the other runtimes use holds exactly that GGUF's weights dequantised to fp32, so
transformers+PEFT on it is the reference the llama.cpp numbers must match.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three colours.",
    "How do I reset my password?",
]


def _conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tokenizer(base_model_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_path)


def _make_adapter(base_model_path: Path, out: Path, seed: int, tokenizer) -> dict:
    """A PEFT LoRA (r=8 on all seven llama projections) with random non-zero A and B, saved to
    `out`, plus transformers' next-token logits with and without it for PROMPTS."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                # PEFT starts B at zero (no effect); a random B of this size changes the
                # greedy answers while the model stays fluent (0.02 hardly changes them).
                param.copy_(torch.randn(param.shape, generator=generator) * 0.15)
    peft_model.save_pretrained(out)
    peft_model.eval()
    logits, base_logits = [], []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tokenizer.apply_chat_template(
                _conversation(text), add_generation_prompt=True, return_tensors="pt"
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            logits.append(peft_model(input_ids=ids).logits[0, -1].numpy())
            with peft_model.disable_adapter():
                base_logits.append(peft_model(input_ids=ids).logits[0, -1].numpy())
    return {"dir": out, "logits": logits, "base_logits": base_logits}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, base_model_path: Path, tokenizer) -> dict:
    import torch

    from assets.deployment.gguf_lora import export_gguf_lora
    from resources.runtimes import AdapterRef, RuntimeSpec
    from resources.runtimes.llama_cpp_runtime import base_gguf_for

    base_gguf = base_gguf_for(RuntimeSpec(kind="llama_cpp"), base_model_path)
    made = {}
    # One torch thread: on a shared 2-core test machine two threads contend with the other
    # jobs and the reference forwards take many times longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, seed in (("a", 1), ("b", 2)):
            made[name] = _make_adapter(
                base_model_path,
                tmp_path_factory.mktemp(f"adapter-{name}") / "peft",
                seed,
                tokenizer,
            )
    finally:
        torch.set_num_threads(threads)
    for name, info in made.items():
        root = info["dir"].parent
        export = export_gguf_lora(info["dir"], root / "adapter.gguf", base_gguf=base_gguf)
        assert export["tensors"] == 30 * len(TARGETS) * 2
        info["ref"] = AdapterRef(
            name=f"t/p/{name}", peft_dir=info["dir"], gguf_lora=root / "adapter.gguf"
        )
    return made


@pytest.fixture(scope="module")
def runtime(base_model_path: Path):
    from resources.runtimes import RuntimeSpec
    from resources.runtimes.llama_cpp_runtime import LlamaCppRuntime

    # One thread (the default is all cores): llama.cpp's threads meet at a barrier after every
    # op, and on a shared, oversubscribed test machine a descheduled thread stalls them all
    # (measured here: 2 threads 5-24 tokens/s, 1 thread ~70).
    rt = LlamaCppRuntime(RuntimeSpec(kind="llama_cpp", n_ctx=1024, n_threads=1), base_model_path)
    yield rt
    rt.close()


def test_prompt_is_transformers_chat_template(runtime, tokenizer) -> None:
    conversations = [
        _conversation("Hello there"),
        [
            {"role": "system", "content": "You answer in French."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour !"},
            {"role": "user", "content": "How are you?"},
        ],
    ]
    for conversation in conversations:
        expected = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        prompt = runtime.format_prompt(conversation)
        assert prompt == expected
        assert runtime.tokenize(prompt) == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def _agreement(runtime, tokenizer, adapter, reference: list[np.ndarray]) -> None:
    # llama.cpp runs the same weights as the fp32 folder (the Q4_1 blocks dequantise exactly),
    # but its Q4_1 matmuls quantise the activations to 8 bits (Q8_1) and sum in another order:
    # the logits differ by ~0.1-0.2 (std), not bit-for-bit, and where the two best tokens are
    # within that of each other the greedy pick may flip. A wrong LoRA layout (no q/k
    # permutation, A/B transposed, wrong scale) moves them far more. Hence: correlation
    # > 0.99 on every prompt, llama.cpp's pick within 0.5 of the reference's best logit, and
    # the very same top-1 token on most prompts.
    same_top1 = 0
    for text, ref in zip(PROMPTS, reference, strict=True):
        ids = tokenizer.apply_chat_template(_conversation(text), add_generation_prompt=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        got = runtime.next_token_logits(ids, adapter)
        assert got.shape == ref.shape
        corr = float(np.corrcoef(got, ref)[0, 1])
        assert corr > 0.99, (text, corr)
        assert ref[int(got.argmax())] > ref.max() - 0.5, text
        same_top1 += int(got.argmax()) == int(ref.argmax())
    assert same_top1 >= len(PROMPTS) - 1, same_top1


def test_logits_match_transformers_with_and_without_adapter(runtime, tokenizer, adapters) -> None:
    a = adapters["a"]
    _agreement(runtime, tokenizer, None, a["base_logits"])
    _agreement(runtime, tokenizer, a["ref"], a["logits"])
    # the adapter really changes the model (else the agreement above proves nothing)
    shift = [float(np.abs(x - y).max()) for x, y in zip(a["logits"], a["base_logits"], strict=True)]
    assert min(shift) > 1.0, shift


def test_adapter_changes_the_answer(runtime, adapters) -> None:
    conversation = [_conversation(PROMPTS[1])]
    base = runtime.generate(conversation, None, max_new_tokens=16)[0]
    tuned = runtime.generate(conversation, adapters["a"]["ref"], max_new_tokens=16)[0]
    assert base.text and tuned.text
    assert base.text != tuned.text
    assert tuned.prompt_tokens == base.prompt_tokens > 0
    assert 0 < tuned.completion_tokens <= 16


def test_stream_joins_to_generate(runtime, adapters) -> None:
    for adapter in (adapters["a"]["ref"], None):
        conversation = _conversation(PROMPTS[0])
        pieces = list(runtime.stream(conversation, adapter, max_new_tokens=24))
        text = runtime.generate([conversation], adapter, max_new_tokens=24)[0].text
        assert len(pieces) > 1
        assert "".join(pieces) == text


def test_alternating_adapters_do_not_leak(runtime, adapters) -> None:
    # The same prompt each time: a KV cache kept across an adapter switch would be reused
    # (prefix match) and leak the previous adapter into the answer.
    conversation = _conversation(PROMPTS[3])
    a, b = adapters["a"]["ref"], adapters["b"]["ref"]
    sequence = [a, b, None, a, b, a, None]
    texts = [runtime.generate([conversation], ad, max_new_tokens=12)[0].text for ad in sequence]
    by_adapter: dict[str | None, set[str]] = {}
    for ad, text in zip(sequence, texts, strict=True):
        by_adapter.setdefault(None if ad is None else ad.name, set()).add(text)
    assert all(len(v) == 1 for v in by_adapter.values()), by_adapter
    assert len({next(iter(v)) for v in by_adapter.values()}) == 3, by_adapter
    # ... and each equals the answer of a fresh runtime that only ever served that adapter
    from resources.runtimes.llama_cpp_runtime import LlamaCppRuntime

    first = {None if ad is None else ad.name: t for ad, t in zip(sequence, texts, strict=True)}
    for ad in (a, b):
        fresh = LlamaCppRuntime(runtime.spec, runtime.base_model_path)
        try:
            assert fresh.generate([conversation], ad, max_new_tokens=12)[0].text == first[ad.name]
        finally:
            fresh.close()


def test_export_refuses_unsupported_adapters(tmp_path, small_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from assets.deployment.gguf_lora import export_gguf_lora

    cases = {
        "dora": (LoraConfig(r=4, target_modules=["q_proj"], use_dora=True), "DoRA"),
        "saved": (
            LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"]),
            "modules_to_save",
        ),
        "lm_head": (LoraConfig(r=4, target_modules=["q_proj", "lm_head"]), "lm_head"),
    }
    for name, (config, message) in cases.items():
        model = AutoModelForCausalLM.from_pretrained(small_model_dir)
        get_peft_model(model, config).save_pretrained(tmp_path / name)
        with pytest.raises(ValueError, match=message):
            export_gguf_lora(tmp_path / name, tmp_path / f"{name}.gguf")
        assert not (tmp_path / f"{name}.gguf").exists()
    # a hand-edited config naming a kind the export does not know is refused too
    cfg = json.loads((tmp_path / "dora" / "adapter_config.json").read_text())
    cfg.update(use_dora=False, peft_type="IA3")
    (tmp_path / "dora" / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="only LORA"):
        export_gguf_lora(tmp_path / "dora", tmp_path / "x.gguf")
