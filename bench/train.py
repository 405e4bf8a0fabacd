"""Training throughput on the CPU: our trainer vs a plain PEFT + PyTorch LoRA loop, on the real
SmolLM2-135M-Instruct and real chat examples built from the demo corpus.

The examples are the product's chat format (`assets.dataset.prompt.build_messages`: a system
prompt, one to four numbered context passages from `sample_data/acme-handbook`, a question, and
an answer taken from the gold passage), tokenised with `assets.training.trainer.encode_example`,
so the prompt is masked and lengths vary as they do in a real project.

Both loops train the same LoRA (r=16, alpha 32, no dropout, every linear layer) in fp32 with
torch AdamW, with the same number of torch threads, each in its own process:

- plain: batches of a fixed number of examples padded to the longest, the model's own loss over
  full logits (the trainer's `packing=False` path: `trainer._collate` + `model(**batch).loss`).
- ours: `assets.training.trainer.run_steps` as the product trains: whole examples packed into
  one row of a token budget, per-example causal attention, answer-only fused cross-entropy.

Useful tokens are real (non-padding) tokens. Peak memory is the growth of the process's peak
RSS over its RSS before the model is built; beside it, `assets.training.memory`'s estimate.

    .venv/bin/python bench/train.py                      # a few minutes on 2 idle cores
    .venv/bin/python bench/train.py --steps 3 --warmup 1 # a quick check
    .venv/bin/python bench/train.py --calibrate          # memory estimate vs measured peak
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train_gpu import LORA, measure  # noqa: E402  (the GPU benchmark's LoRA and runner)

CORPUS = ROOT / "sample_data" / "acme-handbook"
SEQ = 1024


# --- examples -----------------------------------------------------------------------------


def _paragraphs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        text = re.sub(r"(?is)<(script|style|head|nav)\b.*?</\1>", " ", text)
        text = re.sub(r"(?i)<(br|/p|/li|/h\d|/tr|/div)\s*/?>", "\n\n", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    if path.suffix == ".csv":
        lines = text.splitlines()
        header = lines[0].split(",")
        return [
            "; ".join(f"{k}: {v}" for k, v in zip(header, row.split(","), strict=False))
            for row in lines[1:]
            if row.strip()
        ]
    out = []
    for block in re.split(r"\n\s*\n", text):
        block = re.sub(r"[ \t]+", " ", " ".join(block.split("\n"))).strip()
        if len(block) > 60 and not set(block) <= set("=-# "):
            out.append(block)
    return out


def corpus_passages() -> list[tuple[str, str]]:
    """(file name, passage) from the demo corpus' text files: one to four consecutive
    paragraphs, so passages vary in length as chunks do."""
    rng = random.Random(0)
    out = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix not in (".md", ".txt", ".html", ".csv"):
            continue
        paras = _paragraphs(path)
        i = 0
        while i < len(paras):
            n = rng.randint(1, 4)
            out.append((path.name, "\n".join(paras[i : i + n])))
            i += n
    return out


def chat_examples(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """`n` chat examples in the product's format: the gold passage among 0-3 distractors, a
    question about one of its sentences, and an answer of one to three of its sentences."""
    from assets.dataset.prompt import ContextPassage, build_messages, passage_label

    rng = random.Random(seed)
    passages = corpus_passages()
    out = []
    for _ in range(n):
        name, gold = rng.choice(passages)
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", gold) if len(s) > 20] or [gold]
        start = rng.randrange(len(sentences))
        answer = " ".join(sentences[start : start + rng.randint(1, 3)])
        topic = " ".join(sentences[start].split()[:8]).rstrip(".,;:")
        question = f"According to {name}, what does the policy say about: {topic}?"
        context = [(name, gold)] + rng.sample(passages, rng.randint(0, 3))
        rng.shuffle(context)
        shown = [ContextPassage(passage_label(f, 1), t) for f, t in context]
        out.append(build_messages(question, shown, answer=answer))
    return out


def encoded_examples(tokenizer, n: int, seq: int = SEQ, seed: int = 0) -> list[dict]:
    from assets.training.trainer import encode_example

    encoded = (encode_example(tokenizer, m, seq) for m in chat_examples(n, seed))
    return [e for e in encoded if e is not None]


# --- one measurement, in its own process ---------------------------------------------------


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss_bytes() -> int:
    return _status_bytes("VmRSS")


def _reset_peak_rss() -> None:
    """Start the high-water mark afresh (Linux >= 4.0). Not `ru_maxrss`: the kernel carries a
    parent's peak RSS into a child across fork and exec, so a worker started by a large process
    (pytest half an hour into the suite: 2.7 GiB) reported the parent's peak as its own."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss_bytes() -> int:
    return _status_bytes("VmHWM")


def train_params(spec: dict):
    from assets.training.trainer import ALL_LINEAR, TrainParams

    return TrainParams(
        max_steps=spec["warmup"],
        batch_size=spec.get("batch", 8),
        rank=spec.get("rank", LORA["rank"]),
        alpha=2 * spec.get("rank", LORA["rank"]),
        dropout=spec.get("dropout", LORA["dropout"]),
        learning_rate=LORA["lr"],
        target_modules=tuple(spec.get("targets", ALL_LINEAR)),
        max_length=spec.get("seq", SEQ),
        warmup_steps=1,
        packing=spec["loop"] == "ours",
        batch_tokens=spec.get("budget", 0),
        gradient_checkpointing=spec.get("checkpointing", False),
        device="cpu",
    )


def worker(spec: dict) -> dict:
    """Train `spec["warmup"]` then `spec["steps"]` steps of one loop on the CPU; throughput of
    the timed steps, peak RSS growth over the whole run, and the memory estimate."""
    import torch
    from transformers import AutoTokenizer

    from assets.training.memory import estimate_memory
    from assets.training.trainer import load_for_training, make_optimizer, run_steps
    from resources.model_runtime import resolve_base_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    path = resolve_base_model()[1]
    tokenizer = AutoTokenizer.from_pretrained(path)
    params = train_params(spec)
    total_steps = spec["warmup"] + spec["steps"]
    per_step = params.step_tokens() if params.packing else params.batch_size * 300
    train = encoded_examples(tokenizer, max(64, per_step * total_steps // 200), params.max_length)
    _reset_peak_rss()
    rss_before = _rss_bytes()
    model, applied = load_for_training(path, params, "cpu")
    loaded = _rss_bytes() - rss_before
    opt = make_optimizer(model, params, "cpu")
    fed: list[int] = []  # token positions (padding included) of every step's input
    model.get_base_model().model.register_forward_pre_hook(
        lambda _m, _a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True
    )
    run_steps(model, opt, train, params, "cpu")  # warm-up: allocator, oneDNN primitives
    timed_from = len(fed)
    timed = run_steps(model, opt, train, replace(params, max_steps=spec["steps"], seed=1), "cpu")
    peak = _peak_rss_bytes() - rss_before
    padded, widest = sum(fed[timed_from:]), max(fed)

    # the estimate for the tensor size actually seen (the preflight uses the worst case)
    est = estimate_memory(path, params, "cpu", tokens=widest)
    worst = estimate_memory(path, params, "cpu")
    return {
        "useful_tokens": timed["tokens"],
        "tokens_incl_padding": padded,
        "padding_share": round(1 - timed["tokens"] / padded, 3),
        "seconds": round(timed["seconds"], 2),
        "useful_tokens_per_s": round(timed["tokens"] / timed["seconds"], 1),
        "final_loss": round(timed["losses"][-1], 4),
        "largest_step_tokens": widest,
        "peak_rss_growth_gib": round(peak / 2**30, 3),
        "rss_growth_after_load_gib": round(loaded / 2**30, 3),
        "estimate_gib": round(est.total / 2**30, 3),
        "estimate_error": round((est.total - peak) / peak, 3),
        "estimate_worst_case_gib": round(worst.total / 2**30, 3),
        "examples": len(train),
        "applied": applied,
    }


# --- the benchmark ---------------------------------------------------------------------------


def summarise(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    plain = [r["useful_tokens_per_s"] for r in ok if r["loop"] == "plain"]
    ours = [r["useful_tokens_per_s"] for r in ok if r["loop"] == "ours"]
    if not plain or not ours:
        return {}
    best_plain, best_ours = max(plain), max(ours)
    mem = {r["loop"]: r["peak_rss_growth_gib"] for r in ok}
    return {
        "plain_useful_tokens_per_s": best_plain,
        "ours_useful_tokens_per_s": best_ours,
        "speedup": round(best_ours / best_plain, 2),
        "speedup_per_round": [
            round(o / p, 2) for o, p in zip(ours, plain, strict=False)
        ],  # rounds alternate plain / ours, so each pair saw the same machine load
        "plain_peak_memory_gib": mem.get("plain"),
        "ours_peak_memory_gib": mem.get("ours"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="plain/ours pairs, alternating")
    parser.add_argument("--batch", type=int, default=4, help="plain loop: examples per step")
    parser.add_argument(
        "--budget", type=int, default=2048, help="ours: token budget of one packed step"
    )
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="memory estimate vs measured peak for ours at 512-4096 tokens per step",
    )
    parser.add_argument("--out", default=os.environ.get("OUT"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    base = {"warmup": args.warmup, "steps": args.steps, "threads": args.threads}
    if args.calibrate:
        plan = [{**base, "loop": "ours", "budget": b} for b in (512, 1024, 2048, 4096)]
        plan.append({**base, "loop": "plain", "batch": args.batch})
    else:
        plan = []
        for _ in range(args.rounds):
            plan += [
                {**base, "loop": "plain", "batch": args.batch},
                {**base, "loop": "ours", "budget": args.budget},
            ]
    results = []
    for spec in plan:
        results.append(measure(spec, timeout=900, script=__file__))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {
        "device": "cpu",
        "threads": args.threads,
        "model": "SmolLM2-135M-Instruct (fp32)",
        "lora": {k: LORA[k] for k in ("rank", "alpha", "dropout")} | {"targets": "all linear"},
        "results": results,
        "summary": {} if args.calibrate else summarise(results),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        name = "train_cpu_memory.json" if args.calibrate else "train_cpu.json"
        (Path(args.out) / name).write_text(text)


if __name__ == "__main__":
    main()
