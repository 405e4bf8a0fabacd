"""Training throughput on the GPU: our trainer vs a plain PEFT + PyTorch LoRA loop.

Both train LoRA r=16 (alpha 32, no dropout) on every linear layer of a randomly initialised
model shaped like SmolLM2-135M and SmolLM2-1.7B (a `LlamaConfig` of the same shape trains at
the same speed as the real weights), in bf16, on the same stream of variable-length chat
examples (lengths drawn from a log-normal, median 256 tokens, capped at 1024; the prompt part is
masked, the loss is on the answer only).

- plain: batches of a fixed number of examples (32 / 8) padded to the longest, SDPA attention,
  the model's own loss over full logits, torch AdamW.
- ours: `assets.training` as the product trains: whole examples packed into rows of the same
  token budget (32 x 1024 / 8 x 1024), Flash Attention varlen kernels, answer-only chunked
  cross-entropy, fused AdamW, and Liger's RMSNorm/RoPE/SwiGLU kernels when installed.

Useful tokens are real (non-padding) tokens. Every measurement runs in its own process (a clean
CUDA context and peak-memory counter; Liger patches modules globally). QLoRA (bitsandbytes NF4)
is measured on the 1.7B shape through our trainer.

    python bench/train_gpu.py                 # on the GPU machine; JSON on stdout and in $OUT
    python bench/train_gpu.py --smoke         # a tiny shape on the CPU, to check the script
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {
    "smollm2-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "batch": 32,
    },
    "smollm2-1.7b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "batch": 8,
    },
    "tiny": {  # --smoke only
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "batch": 4,
    },
}
VOCAB = 49152
SEQ = 1024
LORA = {"rank": 16, "alpha": 32, "dropout": 0.0, "lr": 1e-4}


def llama_config(shape: str, seq: int):
    from transformers import LlamaConfig

    dims = {k: v for k, v in SHAPES[shape].items() if k != "batch"}
    return LlamaConfig(
        vocab_size=VOCAB,
        max_position_embeddings=max(2048, seq),
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        **dims,
    )


def token_stream(n: int, seq: int, seed: int = 0) -> list[dict]:
    """`n` chat-like examples: log-normal lengths (median 256, sigma 0.8) in [32, seq], the
    first 40-85% of each a masked prompt, the rest the answer."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = int(min(seq, max(32, math.exp(rng.gauss(math.log(256), 0.8)))))
        prompt = int(length * rng.uniform(0.4, 0.85))
        ids = [rng.randrange(3, VOCAB) for _ in range(length)]
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_gb(device: str) -> float | None:
    import torch

    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 1e9, 2)


def run_plain(shape: str, device: str, warmup: int, steps: int, seq: int) -> dict:
    """The plain PEFT + PyTorch loop: padded batches, full logits, the model's own loss."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from assets.training.trainer import ALL_LINEAR

    torch.manual_seed(0)
    batch = SHAPES[shape]["batch"]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            llama_config(shape, seq), dtype=dtype, attn_implementation="sdpa"
        )
    model = get_peft_model(
        model,
        LoraConfig(
            r=LORA["rank"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=list(ALL_LINEAR),
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LORA["lr"])
    stream = token_stream(batch * (warmup + steps), seq)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    useful = padded = 0
    started = 0.0
    losses = []
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            started = time.perf_counter()
            useful = padded = 0
        exs = stream[step * batch : (step + 1) * batch]
        width = max(len(e["input_ids"]) for e in exs)
        ids = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, e in enumerate(exs):
            n = len(e["input_ids"])
            ids[i, :n] = torch.tensor(e["input_ids"])
            labels[i, :n] = torch.tensor(e["labels"])
            mask[i, :n] = 1
        loss = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        useful += int(mask.sum())
        padded += batch * width
    _sync(device)
    seconds = time.perf_counter() - started
    return {
        "loop": "plain",
        "steps": steps,
        "seconds": round(seconds, 3),
        "useful_tokens": useful,
        "tokens_incl_padding": padded,
        "padding_share": round(1 - useful / padded, 3),
        "tokens_incl_padding_per_s": round(padded / seconds, 1),
        "useful_tokens_per_s": round(useful / seconds, 1),
        "peak_memory_gb": _peak_gb(device),
        "final_loss": round(losses[-1], 4),
    }


def run_ours(
    shape: str,
    device: str,
    warmup: int,
    steps: int,
    seq: int,
    fused_kernels: bool,
    qlora: bool = False,
    budget_factor: float = 1.0,
) -> dict:
    """Our trainer's own code path (`assets.training.trainer.run_steps`) on the same stream."""
    import torch

    from assets.training import packing
    from assets.training.trainer import (
        ALL_LINEAR,
        TrainParams,
        load_for_training,
        make_optimizer,
        run_steps,
    )

    torch.manual_seed(0)
    batch = SHAPES[shape]["batch"]
    budget = int(batch * seq * budget_factor)
    params = TrainParams(
        max_steps=warmup,
        rank=LORA["rank"],
        alpha=LORA["alpha"],
        dropout=LORA["dropout"],
        learning_rate=LORA["lr"],
        target_modules=ALL_LINEAR,
        max_length=seq,
        warmup_steps=1,
        packing=True,
        batch_tokens=budget,
        qlora=qlora,
        device=device,
        fused_kernels=fused_kernels,
    )
    source = llama_config(shape, seq)
    tmp = None
    if qlora:  # bitsandbytes quantises while loading: save the random model first
        from transformers import AutoModelForCausalLM

        tmp = tempfile.TemporaryDirectory()
        with torch.device(device):
            full = AutoModelForCausalLM.from_config(source, dtype=torch.bfloat16)
        full.save_pretrained(tmp.name)
        del full
        torch.cuda.empty_cache()
        source = Path(tmp.name)
    model, applied = load_for_training(source, params, device)
    opt = make_optimizer(model, params, device)
    # enough examples for warm-up and timed steps without repeating an epoch
    stream = token_stream(int(budget / 300 * (warmup + steps) * 1.5) + batch, seq)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run_steps(model, opt, stream, params, device)  # warm-up: kernels, allocator
    timed = run_steps(model, opt, stream, replace(params, max_steps=steps, seed=1), device)
    _sync(device)
    if tmp is not None:
        tmp.cleanup()
    return {
        "loop": "ours",
        "steps": steps,
        "seconds": round(timed["seconds"], 3),
        "useful_tokens": timed["tokens"],
        "padding_share": 0.0,
        "useful_tokens_per_s": round(timed["tokens"] / timed["seconds"], 1),
        "peak_memory_gb": _peak_gb(device),
        "final_loss": round(timed["losses"][-1], 4),
        "token_budget": budget,
        "applied": applied,
        "attention": packing.attention_path(),
    }


def worker(spec: dict) -> dict:
    if spec["loop"] == "plain":
        return run_plain(spec["shape"], spec["device"], spec["warmup"], spec["steps"], spec["seq"])
    return run_ours(
        spec["shape"],
        spec["device"],
        spec["warmup"],
        spec["steps"],
        spec["seq"],
        fused_kernels=spec.get("fused_kernels", True),
        qlora=spec.get("qlora", False),
        budget_factor=spec.get("budget_factor", 1.0),
    )


def measure(spec: dict, timeout: float, script: str = __file__) -> dict:
    """One measurement: `script --worker SPEC` in a fresh process (bench/train.py uses this
    too); an error or a timeout is recorded, not raised."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, script, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**spec, "error": (proc.stderr or proc.stdout)[-1500:]}
    return {**spec, **json.loads(lines[-1]), "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="tiny shape on the CPU")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting runs after")
    parser.add_argument("--out", default=os.environ.get("OUT"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    device = "cpu" if args.smoke else "cuda"
    shapes = ["tiny"] if args.smoke else ["smollm2-135m", "smollm2-1.7b"]
    seq = 128 if args.smoke else SEQ
    base = {"device": device, "warmup": args.warmup, "steps": args.steps, "seq": seq}
    # most important first: the time budget may cut the tail
    plan = []
    for shape in shapes:
        # ours on the 1.7B shape at half the plain loop's tensor size (batch x 1024 / 2): still
        # more real tokens per step than a padded batch holds, at a fraction of the memory
        factor = 0.5 if shape == "smollm2-1.7b" else 1.0
        plan += [
            {**base, "shape": shape, "loop": "plain"},
            {
                **base,
                "shape": shape,
                "loop": "ours",
                "fused_kernels": True,
                "budget_factor": factor,
            },
        ]
    if not args.smoke:
        plan.append(
            {**base, "shape": "smollm2-1.7b", "loop": "ours", "qlora": True, "budget_factor": 0.5}
        )
    for shape in shapes[:1]:  # what each part contributes, on the small shape
        plan += [
            {**base, "shape": shape, "loop": "ours", "fused_kernels": False, "budget_factor": 1.0},
            {**base, "shape": shape, "loop": "ours", "fused_kernels": True, "budget_factor": 0.5},
        ]
    started = time.perf_counter()
    results = []
    for spec in plan:
        left = args.budget_s - (time.perf_counter() - started)
        if left < 20:
            results.append({**spec, "error": "skipped: benchmark time budget spent"})
            continue
        results.append(measure(spec, timeout=left))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"device": _device_name(device), "results": results, "summary": summarise(results)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "train_gpu.json").write_text(text)


def summarise(results: list[dict]) -> dict:
    """Ratios against the plain loop of the same shape, same run."""
    out: dict = {}
    for shape in {r["shape"] for r in results}:
        plain = next(
            (
                r
                for r in results
                if r["shape"] == shape and r["loop"] == "plain" and "error" not in r
            ),
            None,
        )
        if plain is None:
            continue
        rows = {}
        for r in results:
            if r["shape"] != shape or r["loop"] != "ours" or "error" in r:
                continue
            name = "{}-{}-x{}".format(
                "qlora" if r.get("qlora") else "lora",
                "fused" if r.get("fused_kernels", True) else "unfused",
                r.get("budget_factor", 1.0),
            )
            rows[name] = {
                "useful_tokens_per_s": r["useful_tokens_per_s"],
                "speedup": round(r["useful_tokens_per_s"] / plain["useful_tokens_per_s"], 2),
                "peak_memory_gb": r["peak_memory_gb"],
                "memory_ratio": (
                    round(r["peak_memory_gb"] / plain["peak_memory_gb"], 2)
                    if r["peak_memory_gb"] and plain["peak_memory_gb"]
                    else None
                ),
            }
        out[shape] = {
            "plain_useful_tokens_per_s": plain["useful_tokens_per_s"],
            "plain_padding_share": plain["padding_share"],
            "plain_tokens_incl_padding_per_s": plain.get("tokens_incl_padding_per_s"),
            "plain_peak_memory_gb": plain["peak_memory_gb"],
            "ours": rows,
        }
    return out


def _device_name(device: str) -> str:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


if __name__ == "__main__":
    main()
