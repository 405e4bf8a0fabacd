"""The trainer's fast path on the CPU: packing keeps examples apart, the answer-only fused
cross-entropy equals the library's loss, and QLoRA is refused without CUDA. The GPU twins are
in tests/gpu/test_training_gpu.py."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from assets.training import packing  # noqa: E402
from assets.training.trainer import (  # noqa: E402
    ALL_LINEAR,
    CPU_MMAP_THRESHOLD,
    TrainingRefused,
    TrainParams,
    load_for_training,
    resolve_device,
)


def _examples(lengths: list[int], vocab: int = 512, seed: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(0, vocab, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2 :]})
    return out


def _tiny() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )


def test_packs_respect_the_budget_and_restart_positions() -> None:
    examples = _examples([30, 50, 20, 70, 10, 100])
    packs = packing.pack_examples(examples, token_budget=100)
    assert [p.lengths for p in packs] == [[30, 50, 20], [70, 10], [100]]
    assert all(p.tokens <= 100 for p in packs)
    first = packs[0]
    assert first.position_ids == [*range(30), *range(50), *range(20)]
    # every example's last position predicts nothing: no target crosses into the next example
    ends = [29, 79, 99]
    assert all(first.targets[i] == packing.IGNORE for i in ends)
    # targets are the next token inside an example, only where the answer is learnt
    ex = examples[1]
    assert first.targets[30 : 30 + 49] == ex["labels"][1:]
    assert first.label_tokens == sum(
        1 for e in examples[:3] for t in e["labels"][1:] if t != packing.IGNORE
    )


def test_training_batches_are_deterministic_and_cover_every_example() -> None:
    from assets.training.trainer import _batches

    examples = _examples([10 + i for i in range(40)])
    params = TrainParams(batch_tokens=64, seed=3)
    a, b = _batches(examples, params, 0), _batches(examples, params, 0)
    first_a = [next(a) for _ in range(30)]
    first_b = [next(b) for _ in range(30)]
    assert [(e, p.input_ids) for e, p in first_a] == [(e, p.input_ids) for e, p in first_b]
    epoch0 = [p for e, p in first_a if e == 0]
    assert 1 in {e for e, _ in first_a}  # 30 packs of <= 64 tokens run into a second epoch
    seen = sorted(n for p in epoch0 for n in p.lengths)
    assert seen == sorted(len(e["input_ids"]) for e in examples)  # one epoch: each example once
    other = _batches(examples, TrainParams(batch_tokens=64, seed=4), 0)
    assert [next(other)[1].input_ids for _ in range(5)] != [p.input_ids for _, p in first_a[:5]]


def test_packed_loss_and_grads_equal_the_padded_batch() -> None:
    """One packed row gives exactly the loss and LoRA gradients of a padded batch of the same
    examples (fp32): attention never crosses an example boundary."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_tiny(), dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=list(ALL_LINEAR), task_type="CAUSAL_LM")
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    examples = _examples([7, 19, 3, 30])
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    labels = torch.full((len(examples), width), -100)
    mask = torch.zeros(len(examples), width, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = (
            torch.tensor(e["input_ids"]),
            torch.tensor(e["labels"]),
            1,
        )
    reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    reference.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)

    packing.enable_packed_attention(model)
    loss, labelled = packing.packed_forward(model, packing.build_pack(examples), "cpu", chunk=5)
    loss.backward()
    assert labelled == int((labels[:, 1:] != -100).sum())
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)
    for name, ref in ref_grads.items():
        assert torch.allclose(model.get_parameter(name).grad, ref, atol=1e-6, rtol=1e-4), name


def test_packed_attention_differs_from_attention_across_examples() -> None:
    """The boundary matters: letting the second example attend to the first changes its loss,
    so the equality above is not an accident of the data."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_tiny(), dtype=torch.float32)
    examples = _examples([20, 20])
    model.requires_grad_(False)
    packing.enable_packed_attention(model)
    apart, _ = packing.packed_forward(model, packing.build_pack(examples), "cpu")
    joined = {
        "input_ids": examples[0]["input_ids"] + examples[1]["input_ids"],
        "labels": [-100] * 20 + examples[1]["labels"],
    }
    together, _ = packing.packed_forward(model, packing.build_pack([joined]), "cpu")
    assert abs(float(apart) - float(together)) > 1e-3


def test_fused_cross_entropy_matches_full_logits() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(50, 16, requires_grad=True)
    weight = torch.randn(300, 16)
    targets = torch.randint(0, 300, (50,))
    loss = packing.fused_linear_cross_entropy(hidden, weight, targets, chunk=7)
    loss.backward()
    grad = hidden.grad.clone()
    hidden.grad = None
    ref = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    assert torch.allclose(grad, hidden.grad, atol=1e-6)
    with torch.no_grad():
        assert float(packing.fused_linear_cross_entropy(hidden, weight, targets)) == pytest.approx(
            float(ref), rel=1e-6
        )


def test_fused_cross_entropy_refuses_a_trainable_output_layer() -> None:
    with pytest.raises(ValueError, match="frozen"):
        packing.fused_linear_cross_entropy(
            torch.randn(4, 8),
            torch.randn(10, 8, requires_grad=True),
            torch.zeros(4, dtype=torch.long),
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_is_refused_on_cpu_with_the_reason() -> None:
    with pytest.raises(TrainingRefused, match="QLoRA .* needs a CUDA GPU .* set qlora=false"):
        resolve_device(TrainParams(qlora=True))
    with pytest.raises(TrainingRefused, match="no CUDA GPU"):
        resolve_device(TrainParams(device="cuda"))
    assert resolve_device(TrainParams()) == "cpu"


def test_load_for_training_switches_to_packed_attention_on_cpu() -> None:
    model, applied = load_for_training(_tiny(), TrainParams(target_modules=ALL_LINEAR), "cpu")
    assert applied == {
        "device": "cpu",
        "dtype": "float32",
        "malloc_mmap_threshold": CPU_MMAP_THRESHOLD,  # glibc here
    }
    assert model.get_base_model().config._attn_implementation == packing.ATTENTION_NAME
    trainable = {n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad}
    assert set(ALL_LINEAR) <= trainable
