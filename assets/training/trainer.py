"""LoRA fine-tuning with PEFT: a plain, deterministic PyTorch loop with the loss on the
assistant's tokens only."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TRAINER_VERSION = "peft-loop-v1"


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


def _mean_loss(model: Any, encoded: list[dict], pad_id: int, batch_size: int) -> float | None:
    import torch

    if not encoded:
        return None
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = _collate(encoded[i : i + batch_size], pad_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train()
    return total / count if count else None


def train_lora(
    model_path: Path,
    train_messages: list[list[dict[str, str]]],
    validation_messages: list[list[dict[str, str]]],
    output_dir: Path,
    params: TrainParams,
    on_step: Any = None,
) -> TrainResult:
    """Train a LoRA adapter on `train_messages` and save it (safetensors) to `output_dir`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not train_messages:
        raise ValueError("no training examples: the train split is empty")
    random.seed(params.seed)
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    encoded = [encode_example(tokenizer, m, params.max_length) for m in train_messages]
    train = [e for e in encoded if e is not None]
    if not train:
        raise ValueError(f"every training example is longer than max_length={params.max_length}")
    val = [
        e
        for e in (encode_example(tokenizer, m, params.max_length) for m in validation_messages)
        if e is not None
    ]

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    config = LoraConfig(
        r=params.rank,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=params.learning_rate
    )

    def lr_at(step: int) -> float:
        if step < params.warmup_steps:
            return params.learning_rate * (step + 1) / params.warmup_steps
        progress = (step - params.warmup_steps) / max(1, params.max_steps - params.warmup_steps)
        return params.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    rng = random.Random(params.seed)
    order: list[int] = []
    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    for step in range(params.max_steps):
        if len(order) < params.batch_size:
            epoch = list(range(len(train)))
            rng.shuffle(epoch)
            order.extend(epoch)
        picked, order = order[: params.batch_size], order[params.batch_size :]
        batch = _collate([train[i] for i in picked], pad_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
        if on_step is not None:
            on_step(step + 1, losses[-1], lr_at(step))
    seconds = time.perf_counter() - started
    validation_loss = _mean_loss(model, val, pad_id, params.batch_size)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    return TrainResult(
        steps=params.max_steps,
        losses=losses,
        validation_loss=validation_loss,
        train_examples=len(train),
        skipped_examples=len(encoded) - len(train),
        tokens_seen=tokens,
        seconds=seconds,
        trainable_parameters=trainable,
        params={**asdict(params), "target_modules": list(params.target_modules)},
    )
