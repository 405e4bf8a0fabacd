"""GPU-only training tests (run on the GPU machine: `pytest -m gpu tests/gpu`). Skipped where
CUDA is absent; the CPU twins of these checks live in tests/unit/test_packing.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _tiny_llama(vocab: int = 1024, **dims: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=dims.get("hidden", 256),
        intermediate_size=dims.get("intermediate", 512),
        num_hidden_layers=dims.get("layers", 3),
        num_attention_heads=8,
        num_key_value_heads=4,  # grouped-query attention, like SmolLM2-135M
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )


def _examples(vocab: int, lengths: list[int], seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        prompt = n // 2
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


@pytest.mark.parametrize("fused_kernels", [False, True])
def test_packed_loss_and_grads_equal_unpacked_on_cuda(fused_kernels: bool) -> None:
    """Packing with Flash varlen attention gives the loss and gradients of the same examples
    run one by one (bf16, so compared with tolerances)."""
    from assets.training import packing
    from assets.training.trainer import ALL_LINEAR, TrainParams, load_for_training

    if fused_kernels:
        pytest.importorskip("liger_kernel")
    torch.manual_seed(0)
    params = TrainParams(
        rank=8,
        alpha=16,
        dropout=0.0,
        target_modules=ALL_LINEAR,
        packing=False,
        fused_kernels=fused_kernels,
    )
    model, applied = load_for_training(_tiny_llama(), params, "cuda")
    assert applied.get("fused_kernels", False) == fused_kernels
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    examples = _examples(1024, [37, 300, 5, 128, 77, 512])

    # reference: each example alone through the library's SDPA attention, no padding
    total = torch.zeros((), device="cuda")
    count = 0
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]], device="cuda")
        labels = torch.tensor([ex["labels"]], device="cuda")
        n = int((labels[:, 1:] != -100).sum())
        total = total + model(input_ids=ids, labels=labels).loss.float() * n
        count += n
    reference = total / count
    reference.backward()
    ref_grads = {
        n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None
    }
    model.zero_grad(set_to_none=True)

    packing.enable_packed_attention(model)
    loss, labelled = packing.packed_forward(model, packing.build_pack(examples), "cuda")
    loss.backward()
    assert packing.attention_path()["path"] == "flash-varlen"
    assert labelled == count
    assert abs(float(loss) - float(reference)) < 0.01 * float(reference)
    for name, ref in ref_grads.items():
        got = model.get_parameter(name).grad.float()
        cos = torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0)
        assert cos > 0.99, (name, float(cos))


def test_fused_cross_entropy_matches_full_logits_on_cuda() -> None:
    from assets.training.packing import fused_linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(3000, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(49152, 256, device="cuda", dtype=torch.bfloat16) * 0.05
    targets = torch.randint(0, 49152, (3000,), device="cuda")
    loss = fused_linear_cross_entropy(hidden, weight, targets, chunk=512)
    loss.backward()
    grad = hidden.grad.float().clone()
    hidden.grad = None
    ref = torch.nn.functional.cross_entropy((hidden @ weight.T).float(), targets)
    ref.backward()
    assert abs(float(loss) - float(ref)) < 1e-3 * float(ref)
    cos = torch.nn.functional.cosine_similarity(
        grad.flatten(), hidden.grad.float().flatten(), dim=0
    )
    assert cos > 0.999


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random Llama with the SmolLM2 tokenizer and chat template, saved to disk."""
    from transformers import AutoModelForCausalLM

    source = os.environ.get("GPU_TEST_TOKENIZER")  # conftest clears PRIVATUNE_* variables
    if source is None:
        from resources.model_runtime import resolve_base_model

        source = str(resolve_base_model()[1])
    out = tmp_path_factory.mktemp("tiny-llama")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (Path(source) / name).exists():
            shutil.copy(Path(source) / name, out / name)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(_tiny_llama(vocab=49152, layers=4)).save_pretrained(out)
    return out


def _messages(n: int) -> list[list[dict[str, str]]]:
    facts = [
        ("How many days of annual leave do employees get?", "Employees get 25 working days."),
        ("When must expense claims be submitted?", "Within 30 days of the expense."),
        ("Who runs the IT security hotline?", "The IT Security team, 24 hours a day."),
        ("Where is the head office?", "The head office is in Cambridge."),
    ]
    return [
        [
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": facts[i % len(facts)][0]},
            {"role": "assistant", "content": facts[i % len(facts)][1]},
        ]
        for i in range(n)
    ]


@pytest.mark.parametrize("qlora", [False, True])
def test_train_lora_learns_on_cuda(tiny_model_dir: Path, tmp_path: Path, qlora: bool) -> None:
    """The product's trainer on CUDA: bf16 LoRA, and QLoRA through bitsandbytes NF4; the loss
    falls on a small fixed set and the adapter is saved."""
    from assets.training.trainer import ALL_LINEAR, TrainParams, train_lora

    if qlora:
        pytest.importorskip("bitsandbytes")
    params = TrainParams(
        max_steps=40,
        learning_rate=3e-3,
        rank=16,
        alpha=32,
        dropout=0.0,
        target_modules=ALL_LINEAR,
        batch_tokens=512,
        warmup_steps=2,
        qlora=qlora,
    )
    result = train_lora(tiny_model_dir, _messages(16), _messages(4), tmp_path / "adapter", params)
    assert result.params["device"] == "cuda"
    assert result.params["dtype"] == "bfloat16"
    assert result.params.get("quantization") == ("nf4" if qlora else None)
    first = sum(result.losses[:3]) / 3
    last = sum(result.losses[-3:]) / 3
    assert last < 0.75 * first, result.losses
    assert result.validation_loss is not None and result.validation_loss < first
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size > 0
