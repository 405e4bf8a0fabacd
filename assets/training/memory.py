"""Peak-memory estimate of a LoRA / QLoRA training run, and the preflight verdict built on it.

The estimate counts what the trainer (`assets.training.trainer`) keeps alive at its peak, the
start of the backward pass of the largest step:

- **weights**: the base model in the compute dtype (fp32 on the CPU, bf16 on CUDA), or NF4 with
  double quantisation for the linear layers under QLoRA (embeddings and norms stay bf16);
- **lora**: the adapter's parameters, gradients and AdamW's two moments, all fp32 (PEFT keeps
  adapters in fp32 even on a bf16 base);
- **activations**: what autograd saves per token and layer of a Llama-style decoder (RMSNorm
  inputs, the q/k/v/o and MLP projections' inputs, LoRA dropout copies, attention outputs), or
  with gradient checkpointing one hidden state per layer plus one recomputed layer;
- **logits**: the answer-only fused cross-entropy keeps two hidden-sized rows per labelled
  token and one chunk of fp32 logits; a plain loss materialises logits, log-softmax and their
  gradient over the whole vocabulary for every position;
- **overhead**: what the runtime holds beyond live tensors: on the CPU a fixed amount (oneDNN's
  scratch, thread arenas), fitted; on CUDA the context (cuBLAS workspaces, kernels) and the
  caching allocator's fragmentation, a share of the activations.

Calibrated on the CPU against the peak RSS growth of the real SmolLM2-135M training in a fresh
process (`bench/train.py --calibrate`); `tests/unit/test_memory_estimate.py` keeps it within
25% of a measurement.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GIB = 2**30

# Fitted on the CPU (fp32, 2 threads, `bench/train.py --calibrate`, glibc's mmap threshold fixed
# as the trainer sets it): the peak RSS growth of SmolLM2-135M training over 4 steps at 860-3980
# tokens per step is weights + adapter + loss + the bytes autograd saves (41.7 KB per token and
# layer there, counted with saved_tensors_hooks and matched by the count below) + about 0.5 GiB
# that does not grow with the step (oneDNN's scratch, the threads' arenas, the optimizer's
# first state): 2-9% above the measurements. Without the fixed threshold glibc kept freed
# activations in its heap and the same run peaked anywhere from 2.5 to 3.7 GiB.
CPU_RUNTIME_BYTES = 512 * 2**20
# CUDA: the context plus the caching allocator's fragmentation (not calibrated here).
CUDA_CONTEXT_BYTES = 600 * 2**20
CUDA_ALLOCATOR_SLACK = 0.1


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        return cls(
            hidden=hidden,
            intermediate=int(config.intermediate_size),
            layers=int(config.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim),
            vocab=int(config.vocab_size),
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.module_dims().values())

    def other_params(self) -> int:
        """Embeddings (and an untied output layer) and norms."""
        emb = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return emb + (2 * self.layers + 1) * self.hidden

    def parameters(self) -> int:
        return self.linear_params() + self.other_params()


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    lora: int  # adapter parameters + gradients + AdamW moments
    activations: int
    logits: int  # the loss: one chunk (fused, answer-only) or full logits
    overhead: int
    tokens: int  # tokens in the largest step
    device: str
    dtype: str
    params: dict[str, Any]

    @property
    def total(self) -> int:
        return self.weights + self.lora + self.activations + self.logits + self.overhead

    def breakdown(self) -> dict[str, float]:
        """Each part and the total, in GiB."""
        parts = {k: getattr(self, k) for k in ("weights", "lora", "activations", "logits")}
        parts["overhead"] = self.overhead
        parts["total"] = self.total
        return {k: round(v / GIB, 3) for k, v in parts.items()}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "gib": self.breakdown()}


def load_shape(source: Any) -> ModelShape:
    """The shape of a model folder (its config.json) or of a transformers config object."""
    if isinstance(source, ModelShape):
        return source
    if isinstance(source, str | Path):
        from transformers import AutoConfig

        source = AutoConfig.from_pretrained(source)
    return ModelShape.from_config(source)


def step_tokens(params: Any) -> int:
    """The largest number of token positions one step feeds the model: the packing budget (or
    one example of `max_length`, which gets a pack of its own when longer than the budget), or
    a padded batch of `batch_size` examples of `max_length`."""
    if params.packing:
        return int(max(params.step_tokens(), params.max_length))
    return int(params.batch_size * params.max_length)


def _activation_elements_per_token(
    shape: ModelShape, targets: set[str], rank: int, dropout: float, dtype_bytes: int
) -> float:
    """Bytes autograd saves per token for one decoder layer, in units of the compute dtype's
    element size (fp32 parts of the RMSNorm are scaled accordingly)."""
    h, i = shape.hidden, shape.intermediate
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    fp32 = 4 / dtype_bytes
    # the residual stream into each RMSNorm (fp32: upcast on a bf16 model), their normalised
    # outputs (the projections' input) and o_proj's input
    norms = 2 * fp32 * h + 3 * h
    # attention: q and k after RoPE, v, and the attention output (per example); the
    # log-sum-exp per head (fp32)
    attention = 2 * q + 2 * kv + fp32 * shape.heads
    # MLP: gate output, SiLU output, up output, their product (down_proj's input)
    mlp = 4 * i
    # LoRA: A's output (rank) per adapted module; with dropout, a dropped copy of the input
    # and its mask (one byte per element)
    lora = 0.0
    for name, (d_in, _) in shape.module_dims().items():
        if name in targets:
            lora += rank * fp32  # A's output (fp32 adapters)
            if dropout > 0:
                lora += d_in * (1 + 1 / dtype_bytes)
    return norms + attention + mlp + lora


def estimate_memory(
    source: Any,
    params: Any,
    device: str = "cpu",
    *,
    tokens: int | None = None,
    fused_loss: bool | None = None,
    label_share: float = 1.0,
) -> MemoryEstimate:
    """Peak memory of training `source` (a model folder, a transformers config or a
    `ModelShape`) with `params` (`TrainParams`) on `device` ("cpu" or "cuda").

    `tokens` overrides the per-step token count (default: the worst case, `step_tokens`);
    `fused_loss` defaults to the trainer's choice (the answer-only fused loss when packing);
    `label_share` is the share of positions with a label (1.0: the worst case)."""
    shape = load_shape(source)
    cuda = device.startswith("cuda")
    dtype_bytes = 2 if cuda else 4
    qlora = bool(getattr(params, "qlora", False))
    checkpointing = bool(getattr(params, "gradient_checkpointing", False))
    fused = bool(params.packing) if fused_loss is None else fused_loss
    n = int(tokens if tokens is not None else step_tokens(params))
    targets = set(params.target_modules)
    rank = int(params.rank)

    # weights
    if qlora:
        # NF4: half a byte per weight, plus double-quantised absmax (8 bits per 64 weights,
        # fp32 per 256 of those) ~ 0.127 bit per weight; the rest stays in bf16
        weights = int(shape.linear_params() * (0.5 + 0.127 / 8)) + 2 * shape.other_params()
    else:
        weights = dtype_bytes * shape.parameters()

    # adapter: fp32 parameter, gradient, exp_avg, exp_avg_sq
    dims = shape.module_dims()
    lora_params = shape.layers * sum(rank * (a + b) for m, (a, b) in dims.items() if m in targets)
    lora = 16 * lora_params

    # activations
    per_layer = _activation_elements_per_token(
        shape, targets, rank, float(params.dropout), dtype_bytes
    )
    if checkpointing:
        # one hidden state per layer, and one layer recomputed during the backward pass
        elements = n * (shape.layers * shape.hidden + per_layer)
    else:
        elements = n * shape.layers * per_layer
    # embeddings' output and the final norm
    elements += n * 3 * shape.hidden
    activations = int(elements * dtype_bytes)
    if qlora and cuda:
        # one linear layer dequantised at a time (bf16)
        activations += 2 * max(a * b for a, b in dims.values())

    # loss
    labelled = max(1, int(n * label_share))
    if fused:
        chunk_bytes = (256 if cuda else 64) * 2**20
        # kept labelled hidden rows and their gradient, one fp32 chunk of logits, and its
        # probabilities cast to the weight dtype on a bf16 model
        logits = 2 * labelled * shape.hidden * dtype_bytes + chunk_bytes * (2.5 if cuda else 2)
    else:
        # logits in the compute dtype, fp32 copy (bf16 only), fp32 log-softmax saved, and in
        # the backward pass fp32 gradients of the log-softmax and the logits
        per_position = dtype_bytes + (4 if cuda else 0) + 4 + 4
        logits = n * shape.vocab * per_position

    if cuda:
        overhead = CUDA_CONTEXT_BYTES + CUDA_ALLOCATOR_SLACK * activations
    else:
        overhead = CPU_RUNTIME_BYTES
    return MemoryEstimate(
        weights=int(weights),
        lora=int(lora),
        activations=int(activations),
        logits=int(logits),
        overhead=int(overhead),
        tokens=n,
        device="cuda" if cuda else "cpu",
        dtype="bf16" if cuda else "fp32",
        params={
            "rank": rank,
            "target_modules": sorted(targets),
            "packing": bool(params.packing),
            "step_tokens": int(params.step_tokens()) if params.packing else None,
            "fused_loss": fused,
            "qlora": qlora,
            "gradient_checkpointing": checkpointing,
            "lora_parameters": lora_params,
        },
    )


# --- what the machine has --------------------------------------------------------------------


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's cgroup (v2, then v1), or None when unlimited."""
    candidates = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    for limit_file, usage_file in candidates:
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw == "max" or not raw.isdigit() or int(raw) >= 2**60:
            return None
        try:
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            usage = 0
        return max(0, int(raw) - usage)
    return None


def available_memory(device: str = "cpu") -> int:
    """Bytes a training run could use now: on the CPU, MemAvailable (or the cgroup's headroom
    when lower); on CUDA, the free memory of the current device."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not found:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return min(found)


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def preflight(
    estimate: MemoryEstimate, available_bytes: int, device: str | None = None
) -> tuple[bool, str]:
    """Whether the run fits in `available_bytes`, and a sentence for the user: the estimate,
    what is available and, on a refusal, what to change."""
    device = device or estimate.device
    p = estimate.params
    where = f"{_gib(available_bytes)} available on {device}"
    if estimate.total <= available_bytes:
        return True, f"needs about {_gib(estimate.total)}, {where}"
    fixes = []
    if p.get("packing"):
        now = p.get("step_tokens") or estimate.tokens
        fixes.append(f"lower batch_tokens (now {now}) or max_length")
    else:
        fixes.append(f"lower batch_size or max_length (now {estimate.tokens} tokens per step)")
    if not p.get("gradient_checkpointing"):
        fixes.append("enable gradient_checkpointing")
    if device.startswith("cuda") and not p.get("qlora") and estimate.weights > estimate.total / 10:
        fixes.append("enable qlora")
    if estimate.lora > estimate.total / 10 and p.get("rank", 0) > 4:
        fixes.append(f"lower rank (now {p['rank']})")
    advice = fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + ", or " + fixes[-1]
    return False, f"needs about {_gib(estimate.total)}, {where}: {advice}"
