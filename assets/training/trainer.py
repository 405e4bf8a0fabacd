"""LoRA / QLoRA fine-tuning with PEFT: a deterministic PyTorch loop with the loss on the
assistant's tokens only, padding-free packing and an answer-only fused cross-entropy
(`assets.training.packing`). bf16 on CUDA, fp32 on CPU; QLoRA (bitsandbytes NF4) on CUDA only."""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from assets.training.checkpoints import Checkpoints

TRAINER_VERSION = "peft-packed-v2"

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainParams:
    max_steps: int = 30
    epochs: float = 0  # when set, the run lasts this many passes over the data instead
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
    fused_kernels: bool = True
    validation_examples: int = 32  # validation loss on at most this many (seeded pick; 0: all)  # Liger's RMSNorm / RoPE / SwiGLU kernels on CUDA when installed

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
    validation_losses: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_step: int | None = None
    checkpoints: list[str] = field(default_factory=list)
    weights_sha256: str = ""  # of the trained LoRA weights (ranks of a data-parallel run agree)

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


# glibc raises its mmap threshold each time a large block is freed, so after the first step the
# activations (MBs each) come from the heap, which keeps what they free: the peak RSS of a CPU
# run then varies with thread timing (2.5-3.7 GiB seen for the same 4 steps of SmolLM2-135M).
# A fixed threshold keeps blocks above it in their own mappings, returned to the system when
# freed: a lower peak (2.2 GiB there) that the memory estimate predicts. Same speed, measured.
CPU_MMAP_THRESHOLD = 2**20
_M_MMAP_THRESHOLD = -3  # mallopt parameter number, <malloc.h>


def fix_mmap_threshold(threshold: int = CPU_MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold for this process (which also ends its dynamic adjustment).
    False where the C library is not glibc (musl, macOS): nothing changed there."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def load_for_training(source: Path | Any, params: TrainParams, device: str) -> tuple[Any, dict]:
    """The base model ready for LoRA: `source` is a model folder or a transformers config (for
    benchmarks on randomly initialised weights). Returns the PEFT model and what was applied."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    applied: dict[str, Any] = {"device": device, "dtype": str(dtype).replace("torch.", "")}
    if device == "cpu" and fix_mmap_threshold():
        applied["malloc_mmap_threshold"] = CPU_MMAP_THRESHOLD
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


def steps_per_epoch(train: list[dict], params: TrainParams) -> int:
    """Optimiser steps one pass over `train` takes (packs with a label, or batches)."""
    if not params.packing:
        return max(1, math.ceil(len(train) / params.batch_size))
    from assets.training.packing import iter_packs

    return max(1, sum(1 for p in iter_packs(train, params.step_tokens()) if p.label_tokens))


def total_steps(train: list[dict], params: TrainParams) -> int:
    """`params.max_steps`, or `params.epochs` passes over the data when epochs are set."""
    if params.epochs:
        return max(1, math.ceil(params.epochs * steps_per_epoch(train, params)))
    return params.max_steps


def train_lora(
    model_path: Path,
    train_messages: list[list[dict[str, str]]],
    validation_messages: list[list[dict[str, str]]],
    output_dir: Path,
    params: TrainParams,
    on_step: Any = None,
    checkpoints: Checkpoints | None = None,
    on_event: Any = None,
) -> TrainResult:
    """Train a LoRA adapter on `train_messages` and save it (safetensors) to `output_dir`.

    `on_step(info)` gets a dict after every optimiser step (step, steps, epoch, loss, lr,
    tokens_per_second, eta_seconds); `on_event(kind, message, data)` gets resumes, checkpoints
    and per-epoch validation losses. With `checkpoints`, the run starts from the latest
    checkpoint there and saves one every `checkpoints.every` steps."""
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
    if len(val) > params.validation_examples > 0:
        val = random.Random(params.seed).sample(val, params.validation_examples)
    params = replace(params, max_steps=total_steps(train, params))
    model, applied = load_for_training(model_path, params, device)
    if model.get_base_model().config.pad_token_id is None:
        model.get_base_model().config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = make_optimizer(model, params, device)

    def validate() -> float | None:
        return _validation_loss(model, val, params, device)

    steps = run_steps(
        model,
        optimizer,
        train,
        params,
        device,
        on_step,
        checkpoints=checkpoints,
        on_event=on_event,
        validate=validate if val else None,
    )
    validation_loss = validate()
    if distributed()[0] == 0:
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
        validation_losses=steps["validation_losses"],
        resumed_from_step=steps["resumed_from_step"],
        checkpoints=steps["checkpoints"],
        weights_sha256=_weights_digest(model),
    )


def lr_schedule(params: TrainParams) -> Any:
    def lr_at(step: int) -> float:
        if step < params.warmup_steps:
            return params.learning_rate * (step + 1) / params.warmup_steps
        progress = (step - params.warmup_steps) / max(1, params.max_steps - params.warmup_steps)
        return params.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return lr_at


def _save_checkpoint(
    model: Any, optimizer: Any, state: dict[str, Any], checkpoints: Checkpoints
) -> str:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.save_pretrained(folder, safe_serialization=True)
        torch.save(
            {
                **state,
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            folder / "trainer_state.pt",
        )
        return checkpoints.save(state["step"], folder)


def _load_checkpoint(model: Any, optimizer: Any, folder: Path) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    state = torch.load(folder / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(state.pop("optimizer"))
    torch.set_rng_state(state.pop("torch_rng"))
    cuda_rng = state.pop("cuda_rng", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_rng)
    return state


def run_steps(
    model: Any,
    optimizer: Any,
    train: list[dict],
    params: TrainParams,
    device: str,
    on_step: Any = None,
    checkpoints: Checkpoints | None = None,
    on_event: Any = None,
    validate: Any = None,
) -> dict[str, Any]:
    """`params.max_steps` optimiser steps over `train` (encoded examples), epoch after epoch in
    a seeded order: packed rows of at most `params.step_tokens()` tokens, or padded batches of
    `params.batch_size` examples when packing is off. The order is a pure function of the seed,
    so a resumed run skips the batches it already trained on and continues exactly."""
    import torch

    lr_at = lr_schedule(params)
    losses: list[float] = []
    validation_losses: list[dict[str, Any]] = []
    saved: list[str] = []
    tokens = 0
    start = 0
    prior_seconds = 0.0
    if checkpoints is not None:
        with tempfile.TemporaryDirectory() as tmp:
            found = checkpoints.latest(Path(tmp))
            if found is not None:
                state = _load_checkpoint(model, optimizer, found[1])
                start, losses, tokens = state["step"], list(state["losses"]), state["tokens"]
                validation_losses = list(state.get("validation_losses", []))
                prior_seconds = float(state.get("seconds", 0.0))
                if on_event is not None:
                    on_event(
                        "resumed",
                        f"resumed from the checkpoint at step {start}",
                        {"step": start},
                    )
    rank, world = distributed()
    # Data parallel (torchrun / accelerate launch): every rank walks the same seeded stream and
    # takes every world-th batch, so a global step covers `world` batches.
    batches = _batches(train, params, _pad_id_of(model))
    if world > 1:
        batches = _every_nth(batches, rank, world)
    epoch = 0
    for _ in range(start):  # the batches trained on before the checkpoint
        epoch, _batch = next(batches)
    started = time.perf_counter()
    for step in range(start, params.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        batch_epoch, batch = next(batches)
        if batch_epoch != epoch:
            if validate is not None:
                loss_value = validate()
                validation_losses.append({"epoch": epoch + 1, "step": step, "loss": loss_value})
                if on_event is not None:
                    on_event(
                        "validation",
                        f"epoch {epoch + 1} validation loss {loss_value:.4f}",
                        validation_losses[-1],
                    )
            epoch = batch_epoch
        if params.packing:
            from assets.training.packing import packed_forward

            loss, _ = packed_forward(model, batch, device)
            tokens += batch.tokens
        else:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            tokens += int(batch["attention_mask"].sum())
        loss.backward()
        if world > 1:
            loss = _average_gradients(model, loss, world)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        elapsed = time.perf_counter() - started
        done = step + 1
        if on_step is not None:
            rate = (done - start) / elapsed if elapsed else 0.0
            on_step(
                {
                    "step": done,
                    "steps": params.max_steps,
                    "epoch": epoch + 1,
                    "loss": losses[-1],
                    "lr": lr_at(step),
                    "tokens_per_second": round(tokens / (prior_seconds + elapsed), 1),
                    "eta_seconds": round((params.max_steps - done) / rate, 1) if rate else None,
                }
            )
        if (
            checkpoints is not None
            and rank == 0
            and done % checkpoints.every == 0
            and done < params.max_steps
        ):
            key = _save_checkpoint(
                model,
                optimizer,
                {
                    "step": done,
                    "losses": losses,
                    "tokens": tokens,
                    "seconds": prior_seconds + elapsed,
                    "validation_losses": validation_losses,
                },
                checkpoints,
            )
            saved.append(key)
            if on_event is not None:
                on_event("checkpoint", f"checkpoint at step {done}", {"step": done, "key": key})
    return {
        "losses": losses,
        "tokens": tokens,
        "seconds": prior_seconds + time.perf_counter() - started,
        "validation_losses": validation_losses,
        "resumed_from_step": start or None,
        "checkpoints": saved,
    }


def _batches(train: list[dict], params: TrainParams, pad_id: int) -> Iterator[tuple[int, Any]]:
    """Endless (epoch, batch) pairs (packs, or padded batches) in a seeded order; packs without
    a labelled token are skipped."""
    rng = random.Random(params.seed)
    epoch = 0
    while True:
        order = list(range(len(train)))
        rng.shuffle(order)
        if params.packing:
            from assets.training.packing import iter_packs

            for pack in iter_packs(train, params.step_tokens(), order):
                if pack.label_tokens:
                    yield epoch, pack
        else:
            for i in range(0, len(order), params.batch_size):
                yield epoch, _collate([train[j] for j in order[i : i + params.batch_size]], pad_id)
        epoch += 1


def distributed() -> tuple[int, int]:
    """(rank, world size) when torch.distributed is initialised (torchrun, accelerate launch),
    else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _every_nth(
    batches: Iterator[tuple[int, Any]], rank: int, world: int
) -> Iterator[tuple[int, Any]]:
    while True:
        group = [next(batches) for _ in range(world)]
        yield group[rank]


def _average_gradients(model: Any, loss: Any, world: int) -> Any:
    """All-reduce the trainable (LoRA) gradients and the loss across ranks: plain data
    parallelism through torch.distributed (NCCL on GPUs, Gloo on CPUs)."""
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    for grad in grads:
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        grad.div_(world)
    mean = loss.detach().clone()
    dist.all_reduce(mean, op=dist.ReduceOp.SUM)
    return mean / world


def _weights_digest(model: Any) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
