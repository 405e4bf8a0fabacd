"""The fast path of the trainer: padding-free packing, variable-length attention that keeps
examples apart, and a chunked linear + cross-entropy that computes logits only where there is
a label.

Why each piece matters, measured in `bench/train.py` (CPU) and `bench/train_gpu.py` (H100):

- **Packing.** Chat examples vary from tens to a thousand tokens; padded batches spend most of
  their compute on padding. We concatenate whole examples into one row up to a token budget;
  positions restart at every example and attention never crosses an example boundary, so the
  loss is the one an unpadded batch would give (tested).
- **Variable-length attention.** On CUDA, Flash Attention's varlen kernel over the cumulative
  sequence lengths; elsewhere, causal SDPA per example. Registered as a transformers attention
  implementation, so the model code stays the library's.
- **Answer-only fused cross-entropy.** The loss is on the assistant's tokens only, often a
  fifth of a row, yet a plain loop computes fp32 logits over the 49K-token vocabulary for every
  position. We take the hidden states of labelled positions only and compute logits, loss and
  the gradient chunk by chunk in the forward pass, so full logits never exist.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

ATTENTION_NAME = "privatune_packed"
IGNORE = -100


@dataclass(frozen=True)
class Pack:
    """Whole examples laid end to end in one row."""

    input_ids: list[int]
    targets: list[int]  # next-token target per position, IGNORE where no loss
    position_ids: list[int]
    lengths: list[int]  # one per example, in order

    @property
    def tokens(self) -> int:
        return len(self.input_ids)

    @property
    def examples(self) -> int:
        return len(self.lengths)

    @property
    def label_tokens(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


def shifted_targets(labels: Sequence[int]) -> list[int]:
    """Per-position next-token targets for one example: position i predicts labels[i + 1]; the
    last position predicts nothing, so no target ever reaches into the next packed example."""
    return [*labels[1:], IGNORE]


def build_pack(examples: Sequence[dict]) -> Pack:
    ids: list[int] = []
    targets: list[int] = []
    positions: list[int] = []
    lengths: list[int] = []
    for ex in examples:
        n = len(ex["input_ids"])
        ids.extend(ex["input_ids"])
        targets.extend(shifted_targets(ex["labels"]))
        positions.extend(range(n))
        lengths.append(n)
    return Pack(ids, targets, positions, lengths)


def iter_packs(
    examples: Sequence[dict], token_budget: int, order: Sequence[int] | None = None
) -> Iterator[Pack]:
    """Greedy packing in the given order, lazily (the trainer walks a seeded order per epoch):
    each pack takes the next examples while they
    fit in `token_budget` tokens. An example longer than the budget gets a pack of its own
    (callers cap example length at the sequence length, which is at most the budget)."""
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")
    current: list[dict] = []
    used = 0
    for i in order if order is not None else range(len(examples)):
        ex = examples[i]
        n = len(ex["input_ids"])
        if current and used + n > token_budget:
            yield build_pack(current)
            current, used = [], 0
        current.append(ex)
        used += n
    if current:
        yield build_pack(current)


def pack_examples(
    examples: Sequence[dict], token_budget: int, order: Sequence[int] | None = None
) -> list[Pack]:
    return list(iter_packs(examples, token_budget, order))


# --- attention -----------------------------------------------------------------------------


def cu_seqlens(lengths: Sequence[int], device: Any) -> Any:
    import torch

    out = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    out[1:] = torch.cumsum(torch.tensor(list(lengths), dtype=torch.int32), 0)
    return out.to(device)


_VARLEN: dict[str, Any] = {}


def _varlen_flash(q: Any, k: Any, v: Any, cu: Any, max_len: int, scale: float | None) -> Any:
    """Causal Flash Attention over packed sequences, q/k/v shaped (tokens, heads, dim). Uses
    `torch.nn.attention.varlen.varlen_attn` (its signature changed between torch releases)."""
    from torch.nn.attention.varlen import varlen_attn

    if "params" not in _VARLEN:
        _VARLEN["params"] = set(inspect.signature(varlen_attn).parameters)
    params = _VARLEN["params"]
    if k.shape[1] != q.shape[1] and "enable_gqa" not in params:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    kwargs: dict[str, Any] = {}
    if "is_causal" in params:
        kwargs["is_causal"] = True
    else:
        kwargs["window_size"] = (-1, 0)
    if "enable_gqa" in params and k.shape[1] != q.shape[1]:
        kwargs["enable_gqa"] = True
    if scale is not None and "scale" in params:
        kwargs["scale"] = scale
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def _per_sequence_sdpa(q: Any, k: Any, v: Any, lengths: Sequence[int], scale: float | None) -> Any:
    """Causal SDPA example by example; q/k/v shaped (1, heads, tokens, dim)."""
    import torch
    import torch.nn.functional as F

    gqa = k.shape[1] != q.shape[1]
    outs = []
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, sl], k[:, :, sl], v[:, :, sl], is_causal=True, scale=scale, enable_gqa=gqa
            )
        )
        start += n
    return torch.cat(outs, dim=2)


def packed_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """A transformers attention function for packed rows (batch 1). Reads the sequence
    boundaries from `cu_seq_lens_q` / `max_length_q` (passed through the model's kwargs) and
    returns (batch, tokens, heads, dim) like the library's own implementations."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        raise RuntimeError(
            "packed attention needs cu_seq_lens_q and max_length_q: call the model through "
            "assets.training.packing.packed_forward"
        )
    if query.shape[0] != 1:
        raise RuntimeError("packed attention expects one packed row (batch size 1)")
    if query.is_cuda and _VARLEN.get("flash_ok", True):
        try:
            q = query[0].transpose(0, 1).contiguous()  # (tokens, heads, dim)
            k = key[0].transpose(0, 1).contiguous()
            v = value[0].transpose(0, 1).contiguous()
            out = _varlen_flash(q, k, v, cu, int(kwargs["max_length_q"]), scaling)
            _VARLEN["path"] = "flash-varlen"
            return out.unsqueeze(0), None
        except (ImportError, RuntimeError, TypeError, NotImplementedError) as exc:
            _VARLEN["flash_ok"] = False
            _VARLEN["flash_error"] = f"{type(exc).__name__}: {exc}"[:300]
    lengths = (cu[1:] - cu[:-1]).tolist()
    _VARLEN["path"] = "sdpa-per-sequence"
    out = _per_sequence_sdpa(query, key, value, lengths, scaling)
    return out.transpose(1, 2).contiguous(), None


def attention_path() -> dict[str, str]:
    """Which attention kernel the packed path used (for benchmarks and run metadata)."""
    return {k: str(v) for k, v in _VARLEN.items() if k in ("path", "flash_error")}


def enable_packed_attention(model: Any) -> None:
    """Switch a transformers model (or a PEFT wrapper of one) to the packed attention."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, packed_attention)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(ATTENTION_NAME)


# --- loss ----------------------------------------------------------------------------------


def _chunk_rows(vocab: int, is_cuda: bool) -> int:
    # fp32 logits of one chunk: about 256 MB on a GPU, 64 MB on a CPU
    budget = (256 if is_cuda else 64) * 2**20
    return max(16, budget // (4 * vocab))


def fused_linear_cross_entropy(hidden: Any, weight: Any, targets: Any, chunk: int = 0) -> Any:
    """Mean cross-entropy of `hidden @ weight.T` against `targets` without materialising all
    logits: chunk by chunk, the forward pass computes the loss and the gradient with respect to
    `hidden` (fp32 softmax, like the library's loss). `weight` must be frozen (LoRA's lm_head)."""
    import torch

    if weight.requires_grad:
        raise ValueError("fused_linear_cross_entropy needs a frozen output layer")
    if hidden.shape[0] == 0:
        raise ValueError("no labelled positions in this batch")

    chunk = chunk or _chunk_rows(weight.shape[0], hidden.is_cuda)
    if torch.is_grad_enabled() and hidden.requires_grad:
        return _FusedLinearCE.apply(hidden, weight, targets, chunk)
    return _fused_ce_no_grad(hidden, weight, targets, chunk)


def _fused_ce_no_grad(hidden: Any, weight: Any, targets: Any, chunk: int) -> Any:
    import torch

    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    with torch.no_grad():
        for s in range(0, hidden.shape[0], chunk):
            logits = (hidden[s : s + chunk] @ weight.T).float()
            tgt = targets[s : s + chunk]
            total += (torch.logsumexp(logits, -1) - logits.gather(1, tgt[:, None])[:, 0]).sum()
    return total / hidden.shape[0]


try:
    import torch as _torch

    class _FusedLinearCE(_torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, chunk: int) -> Any:  # type: ignore[override]
            import torch

            n = hidden.shape[0]
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad = torch.empty_like(hidden)
            for s in range(0, n, chunk):
                h = hidden[s : s + chunk]
                tgt = targets[s : s + chunk]
                logits = (h @ weight.T).float()
                lse = torch.logsumexp(logits, -1)
                total += (lse - logits.gather(1, tgt[:, None])[:, 0]).sum()
                probs = torch.exp(logits.sub_(lse[:, None]))  # softmax, in place of the logits
                probs[torch.arange(h.shape[0], device=h.device), tgt] -= 1.0
                grad[s : s + chunk] = (probs.to(weight.dtype) @ weight).to(hidden.dtype)
            ctx.save_for_backward(grad)
            ctx.n = n
            return total / n

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:  # type: ignore[override]
            (grad,) = ctx.saved_tensors
            return grad * (grad_output / ctx.n).to(grad.dtype), None, None, None

except ImportError:  # pragma: no cover - torch is a hard dependency of training
    pass


def to_device_pack(pack: Pack, device: Any) -> dict[str, Any]:
    import torch

    return {
        "input_ids": torch.tensor([pack.input_ids], dtype=torch.long, device=device),
        "position_ids": torch.tensor([pack.position_ids], dtype=torch.long, device=device),
        "targets": torch.tensor(pack.targets, dtype=torch.long, device=device),
        "cu": cu_seqlens(pack.lengths, device),
        "max_len": max(pack.lengths),
    }


def packed_forward(model: Any, pack: Pack, device: Any, chunk: int = 0) -> tuple[Any, int]:
    """Loss (mean over labelled tokens) of one pack through a causal LM (or its PEFT wrapper)
    switched to the packed attention, and the number of labelled tokens."""
    import torch

    t = to_device_pack(pack, device)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out = base.model(
        input_ids=t["input_ids"],
        position_ids=t["position_ids"],
        cu_seq_lens_q=t["cu"],
        cu_seq_lens_k=t["cu"],
        max_length_q=t["max_len"],
        max_length_k=t["max_len"],
        use_cache=False,
    )
    hidden = out.last_hidden_state[0]
    keep = torch.nonzero(t["targets"] != IGNORE, as_tuple=True)[0]
    if keep.numel() == 0:
        raise ValueError("this pack has no labelled tokens")
    loss = fused_linear_cross_entropy(
        hidden.index_select(0, keep), base.lm_head.weight, t["targets"][keep], chunk
    )
    return loss, int(keep.numel())
