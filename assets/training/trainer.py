"""LoRA / QLoRA fine-tuning with PEFT: a deterministic PyTorch loop with the loss on the
assistant's tokens only, padding-free packing and an answer-only fused cross-entropy
(`assets.training.packing`). bf16 on CUDA, fp32 on CPU; QLoRA (bitsandbytes NF4) on CUDA only."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TRAINER_VERSION = "peft-packed-v2"

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainParams:
    max_steps: int = 30
    batch_size: int = 4
    learning_rate: float = 5e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_length: int = 512
    warmup_steps: int = 3
    seed: int = 0
    packing: bool = True
    batch_tokens: int = 0  # token budget of one packed step; 0: batch_size * max_length / 2
    qlora: bool = False
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto | cpu | cuda
    fused_kernels: bool = True  # Liger's RMSNorm / RoPE / SwiGLU kernels on CUDA when installed

    def step_tokens(self) -> int:
        return self.batch_tokens or max(self.max_length, self.batch_size * self.max_length // 2)


@dataclass
class TrainResult:
    steps: int
    losses: list[float]
    validation_loss: float | None
    train_examples: int
    skipped_examples: int
    tokens_seen: int
    seconds: float
    trainable_parameters: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.seconds if self.seconds else 0.0


def encode_example(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> dict | None:
    """Token ids and labels (-100 on everything but the assistant's answer), or None when the
    example does not fit `max_length`."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("chat template does not extend the prompt with the answer")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if len(full_ids) > max_length or len(full_ids) <= len(prompt_ids):
        return None
    labels = [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return {"input_ids": full_ids, "labels": labels}


def _collate(batch: list[dict], pad_id: int) -> dict:
    import torch

    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        labels[i, :n] = torch.tensor(b["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _mean_loss(
    model: Any, encoded: list[dict], pad_id: int, batch_size: int, device: str = "cpu"
) -> float | None:
    import torch

    if not encoded:
        return None
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = {
                k: v.to(device) for k, v in _collate(encoded[i : i + batch_size], pad_id).items()
            }
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train()
    return total / count if count else None


class TrainingRefused(ValueError):
    """A run asked for something this machine cannot do (e.g. QLoRA without CUDA)."""


def resolve_device(params: TrainParams) -> str:
    import torch

    has_cuda = torch.cuda.is_available()
    if params.device == "cuda" and not has_cuda:
        raise TrainingRefused("device=cuda was asked for, but this machine has no CUDA GPU")
    device = "cuda" if params.device in ("auto", "cuda") and has_cuda else "cpu"
    if params.qlora and device != "cuda":
        raise TrainingRefused(
            "QLoRA (bitsandbytes 4-bit NF4) needs a CUDA GPU and this run would train on the "
            "CPU: set qlora=false to train a LoRA adapter in full precision, or run on a GPU worker"
        )
    return device


def apply_fused_kernels(model: Any) -> bool:
    """Liger's Triton kernels for RMSNorm, RoPE and SwiGLU on a Llama-family model (CUDA only,
    when `liger-kernel` is installed). The cross-entropy stays ours (answer-only)."""
    try:
        from liger_kernel.transformers import apply_liger_kernel_to_llama
    except ImportError:
        return False
    if getattr(model.config, "model_type", "") != "llama":
        return False
    apply_liger_kernel_to_llama(
        rope=True,
        rms_norm=True,
        swiglu=True,
        cross_entropy=False,
        fused_linear_cross_entropy=False,
        model=model,
    )
    return True


def load_for_training(source: Path | Any, params: TrainParams, device: str) -> tuple[Any, dict]:
    """The base model ready for LoRA: `source` is a model folder or a transformers config (for
    benchmarks on randomly initialised weights). Returns the PEFT model and what was applied."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    applied: dict[str, Any] = {"device": device, "dtype": str(dtype).replace("torch.", "")}
    if params.qlora:
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, quantization_config=quant, device_map={"": 0}
        )
        applied["quantization"] = "nf4"
    elif isinstance(source, Path | str):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    else:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(source, dtype=dtype)
    if device == "cuda" and params.fused_kernels:
        applied["fused_kernels"] = apply_fused_kernels(model)
    if params.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    if params.packing:
        from assets.training.packing import enable_packed_attention

        enable_packed_attention(model)
    model.train()
    return model, applied


def make_optimizer(model: Any, params: TrainParams, device: str) -> Any:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if device == "cuda":
        return torch.optim.AdamW(trainable, lr=params.learning_rate, fused=True)
    return torch.optim.AdamW(trainable, lr=params.learning_rate)


def _validation_loss(
    model: Any, encoded: list[dict], params: TrainParams, device: str
) -> float | None:
    import torch

    if not encoded:
        return None
    if not params.packing:
        return _mean_loss(model, encoded, _pad_id_of(model), params.batch_size, device)
    from assets.training.packing import pack_examples, packed_forward

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for pack in pack_examples(encoded, params.step_tokens()):
            if pack.label_tokens == 0:
                continue
            loss, n = packed_forward(model, pack, device)
            total += float(loss) * n
            count += n
    model.train()
    return total / count if count else None


def _pad_id_of(model: Any) -> int:
    config = model.get_base_model().config
    pad = getattr(config, "pad_token_id", None)
    return pad if pad is not None else (getattr(config, "eos_token_id", None) or 0)


def train_lora(
    model_path: Path,
    train_messages: list[list[dict[str, str]]],
    validation_messages: list[list[dict[str, str]]],
    output_dir: Path,
    params: TrainParams,
    on_step: Any = None,
) -> TrainResult:
    """Train a LoRA adapter on `train_messages` and save it (safetensors) to `output_dir`.

    `on_step(step, loss, lr)` is called after every optimiser step."""
    import torch
    from transformers import AutoTokenizer

    if not train_messages:
        raise ValueError("no training examples: the train split is empty")
    device = resolve_device(params)
    random.seed(params.seed)
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    encoded = [encode_example(tokenizer, m, params.max_length) for m in train_messages]
    train = [e for e in encoded if e is not None]
    if not train:
        raise ValueError(f"every training example is longer than max_length={params.max_length}")
    val = [
        e
        for e in (encode_example(tokenizer, m, params.max_length) for m in validation_messages)
        if e is not None
    ]
    model, applied = load_for_training(model_path, params, device)
    if model.get_base_model().config.pad_token_id is None:
        model.get_base_model().config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = make_optimizer(model, params, device)
    steps = run_steps(model, optimizer, train, params, device, on_step)
    validation_loss = _validation_loss(model, val, params, device)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    return TrainResult(
        steps=params.max_steps,
        losses=steps["losses"],
        validation_loss=validation_loss,
        train_examples=len(train),
        skipped_examples=len(encoded) - len(train),
        tokens_seen=steps["tokens"],
        seconds=steps["seconds"],
        trainable_parameters=trainable,
        params={
            **asdict(params),
            "target_modules": list(params.target_modules),
            "step_tokens": params.step_tokens(),
            **applied,
        },
    )


def lr_schedule(params: TrainParams) -> Any:
    def lr_at(step: int) -> float:
        if step < params.warmup_steps:
            return params.learning_rate * (step + 1) / params.warmup_steps
        progress = (step - params.warmup_steps) / max(1, params.max_steps - params.warmup_steps)
        return params.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return lr_at


def run_steps(
    model: Any,
    optimizer: Any,
    train: list[dict],
    params: TrainParams,
    device: str,
    on_step: Any = None,
) -> dict[str, Any]:
    """`params.max_steps` optimiser steps over `train` (encoded examples), epoch after epoch in
    a seeded order: packed rows of at most `params.step_tokens()` tokens, or padded batches of
    `params.batch_size` examples when packing is off."""
    import torch

    lr_at = lr_schedule(params)
    losses: list[float] = []
    tokens = 0
    batches = _batches(train, params, _pad_id_of(model))
    started = time.perf_counter()
    for step in range(params.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        batch = next(batches)
        if params.packing:
            from assets.training.packing import packed_forward

            loss, _ = packed_forward(model, batch, device)
            tokens += batch.tokens
        else:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            tokens += int(batch["attention_mask"].sum())
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, losses[-1], lr_at(step))
    return {"losses": losses, "tokens": tokens, "seconds": time.perf_counter() - started}


def _batches(train: list[dict], params: TrainParams, pad_id: int) -> Iterator[Any]:
    """Endless training batches (packs, or padded batches) in a seeded order; packs without a
    labelled token are skipped."""
    if params.packing:
        from assets.training.packing import epoch_packs

        yield from (
            p for p in epoch_packs(train, params.step_tokens(), params.seed) if p.label_tokens
        )
        return
    rng = random.Random(params.seed)
    order: list[int] = []
    while True:
        if len(order) < params.batch_size:
            epoch = list(range(len(train)))
            rng.shuffle(epoch)
            order.extend(epoch)
        picked, order = order[: params.batch_size], order[params.batch_size :]
        yield _collate([train[i] for i in picked], pad_id)
