"""Serving benchmark: speed of our runtimes against their plain baselines, and answer quality
with and without retrieval and the adapter. Prints JSON.

Everything is built here from the demo corpus (sample_data/acme-handbook): chunks, the
deterministic examples, a document-level split, the hybrid retrieval index and, unless
`--adapter` names one, a LoRA adapter trained with the product's trainer (40 steps, as the demo;
cached under .privatune/bench/).

Speed (64-token answers to grounded prompts, greedy), concurrency 1 and 8:
- transformers: our runtime (batches concurrent requests, adapters per row) vs plain
  `model.generate` on the same PeftModel, one call per request (8 threads at concurrency 8);
- llama.cpp: our runtime (base GGUF + the adapter exported by our packaging step to GGUF LoRA)
  vs raw llama-cpp-python (`Llama(lora_path=...)`, `create_chat_completion`) on the same files.
Each figure: aggregate completion tokens/s, latency p50/p95 and first-token p50.

Quality on the gold split plus refusal probes: base model without retrieval, base + retrieval,
adapter + retrieval (the metrics of assets/evaluation).

    .venv/bin/python bench/serve.py [--adapter DIR] [--requests 16] [--skip-llama-cpp]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assets.dataset.generate import DeterministicGenerator, build_examples  # noqa: E402
from assets.dataset.prompt import DEFAULT_REFUSAL  # noqa: E402
from assets.dataset.refusals import (  # noqa: E402
    DEFAULT_ESCALATION,
    escalation_questions,
    refusal_questions,
)
from assets.dataset.split import assign_splits  # noqa: E402
from assets.evaluation.metrics import percentile  # noqa: E402
from assets.evaluation.run import System, evaluate  # noqa: E402
from assets.retrieval.answering import Answering, Prepared  # noqa: E402
from assets.retrieval.hybrid import build_index  # noqa: E402
from bench.dataset import CORPUS, load_chunks  # noqa: E402
from resources.model_runtime import packaged_gguf, resolve_base_model  # noqa: E402
from resources.runtimes import AdapterRef, RuntimeSpec  # noqa: E402

TOKENS = 64


def corpus(model_path: Path):
    """Chunks and examples as the product's `examples` asset makes them from the demo corpus:
    the same document-level split (stratified by type, seed 13), distractors from the same
    split, refusal and escalation examples in train and validation."""
    from assets.dataset.assets import document_type
    from assets.dataset.refusals import policy_examples

    loaded = load_chunks(CORPUS, model_path)
    documents = sorted({c.document_id for c in loaded})
    filenames = {c.document_id: c.filename for c in loaded}
    splits = assign_splits(
        documents, seed=13, types={d: document_type(filenames[d], None) for d in documents}
    )
    by_split: dict[str, list] = {"train": [], "validation": [], "gold": []}
    for split in by_split:
        chunks = [c for c in loaded if splits[c.document_id] == split]
        pairs = DeterministicGenerator().pairs(chunks)
        by_split[split] = build_examples(
            chunks, pairs, "deterministic-v1", pool=chunks, seed=13, split=split
        )
    refusals = refusal_questions(loaded, 13)
    escalations = escalation_questions(loaded, 13)
    for split, (r, e) in {
        "train": (slice(0, 8), slice(0, 8)),
        "validation": (slice(8, 12), slice(8, 12)),
    }.items():
        pool = [c for c in loaded if splits[c.document_id] == split]
        by_split[split] += policy_examples(
            refusals[r], "refusal", DEFAULT_REFUSAL, pool, split, seed=13
        )
        by_split[split] += policy_examples(
            escalations[e], "escalation", DEFAULT_ESCALATION, pool, split, seed=13
        )
    return loaded, by_split


def train_adapter(model_path: Path, examples: dict, steps: int) -> Path:
    from assets.training.trainer import TrainParams, train_lora

    train = [e.messages for e in examples["train"]]
    validation = [e.messages for e in examples["validation"]]
    digest = hashlib.sha256(json.dumps([train, steps]).encode()).hexdigest()[:12]
    out = ROOT / ".privatune" / "bench" / f"serve-adapter-{digest}"
    if (out / "adapter_model.safetensors").is_file():
        return out
    params = TrainParams(max_steps=steps, batch_size=4, max_length=512, device="cpu")
    train_lora(model_path, train, validation, out, params)
    return out


def latency_figures(samples: list[tuple[float, float, int]], wall: float) -> dict:
    first = [s[0] for s in samples]
    totals = [s[1] for s in samples]
    tokens = sum(s[2] for s in samples)
    return {
        "requests": len(samples),
        "completion_tokens": tokens,
        "tokens_per_second": round(tokens / wall, 2),
        "latency_p50_s": round(percentile(totals, 50), 3),
        "latency_p95_s": round(percentile(totals, 95), 3),
        "first_token_p50_s": round(percentile(first, 50), 3),
        "wall_s": round(wall, 2),
    }


def drive(one, prompts: list, concurrency: int) -> dict:
    """Run `one(prompt) -> (first_token_s, total_s, tokens)` over the prompts with this many
    concurrent callers; aggregate figures."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        samples = list(pool.map(one, prompts))
    return latency_figures(samples, time.perf_counter() - started)


def timed_stream(pieces, count_tokens) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    text = []
    for piece in pieces:
        if first is None:
            first = time.perf_counter() - started
        text.append(piece)
    total = time.perf_counter() - started
    return (first if first is not None else total, total, count_tokens("".join(text)))


def bench_transformers(model_path: Path, adapter_dir: Path, prompts: list, requests: int) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    from resources.runtimes.transformers_runtime import TransformersRuntime

    runtime = TransformersRuntime(RuntimeSpec(max_batch=8), model_path)
    adapter = AdapterRef("bench/serve/v1", peft_dir=adapter_dir)
    tokenizer = runtime.tokenizer

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def ours(messages) -> tuple[float, float, int]:
        return timed_stream(runtime.stream(messages, adapter, TOKENS), count)

    plain_tok = AutoTokenizer.from_pretrained(model_path)
    plain_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32), str(adapter_dir)
    ).eval()

    def plain(messages) -> tuple[float, float, int]:
        enc = plain_tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        streamer = TextIteratorStreamer(plain_tok, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(
            target=lambda: plain_model.generate(
                **enc,
                max_new_tokens=TOKENS,
                do_sample=False,
                streamer=streamer,
                pad_token_id=plain_tok.eos_token_id,
            )
        )
        with torch.inference_mode():
            worker.start()
            result = timed_stream(streamer, count)
            worker.join()
        return result

    out = {}
    for name, fn in (("ours", ours), ("plain_generate", plain)):
        fn(prompts[0])  # warm-up
        out[name] = {
            "concurrency_1": drive(fn, prompts[: max(4, requests // 2)], 1),
            "concurrency_8": drive(fn, prompts[:requests], 8),
        }
    for name in out:
        c1, c8 = out[name]["concurrency_1"], out[name]["concurrency_8"]
        out[name]["scaling_8_vs_1"] = round(c8["tokens_per_second"] / c1["tokens_per_second"], 2)
    for c in ("concurrency_1", "concurrency_8"):
        out[f"ratio_ours_vs_plain_{c}"] = round(
            out["ours"][c]["tokens_per_second"] / out["plain_generate"][c]["tokens_per_second"], 2
        )
    out["largest_batch"] = runtime.largest_batch
    return out


def bench_llama_cpp(model_path: Path, adapter_dir: Path, prompts: list, requests: int) -> dict:
    import tempfile

    from llama_cpp import Llama

    from assets.deployment.gguf_lora import export_gguf_lora
    from resources.runtimes.llama_cpp_runtime import LlamaCppRuntime

    gguf_dir = Path(tempfile.mkdtemp(prefix="bench-gguf-"))
    lora = gguf_dir / "adapter-lora.gguf"
    export_gguf_lora(adapter_dir, lora)
    threads = os.cpu_count() or 2
    runtime = LlamaCppRuntime(RuntimeSpec(kind="llama_cpp", n_threads=threads), model_path)
    adapter = AdapterRef("bench/serve/v1", gguf_lora=lora)
    raw = Llama(
        model_path=str(packaged_gguf()),
        lora_path=str(lora),
        n_ctx=4096,
        n_threads=threads,
        verbose=False,
    )
    raw_lock = threading.Lock()  # a llama.cpp context serves one request at a time

    def count(text: str) -> int:
        return len(raw.tokenize(text.encode(), add_bos=False, special=False))

    def ours(messages) -> tuple[float, float, int]:
        return timed_stream(runtime.stream(messages, adapter, TOKENS), count)

    def raw_stream(messages):
        with raw_lock:
            for chunk in raw.create_chat_completion(
                messages=messages, max_tokens=TOKENS, temperature=0.0, stream=True
            ):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

    def plain(messages) -> tuple[float, float, int]:
        return timed_stream(raw_stream(messages), count)

    out = {"adapter_gguf_bytes": lora.stat().st_size}
    for name, fn in (("ours", ours), ("raw_llama_cpp_python", plain)):
        fn(prompts[0])
        out[name] = {
            "concurrency_1": drive(fn, prompts[: max(4, requests // 2)], 1),
            "concurrency_8": drive(fn, prompts[:requests], 8),
        }
    for c in ("concurrency_1", "concurrency_8"):
        out[f"ratio_ours_vs_raw_{c}"] = round(
            out["ours"][c]["tokens_per_second"]
            / out["raw_llama_cpp_python"][c]["tokens_per_second"],
            2,
        )
    return out


class NoRetrieval:
    """The base model asked the bare question (system prompt only): the no-retrieval baseline."""

    def __init__(self, answering: Answering) -> None:
        self.answering = answering

    def prepare(self, question: str) -> Prepared:
        messages = [
            {"role": "system", "content": self.answering.system_prompt},
            {"role": "user", "content": question},
        ]
        return Prepared(question, messages, None, [], 0.0)


def quality(model_path: Path, adapter_dir: Path, answering: Answering, questions: list) -> dict:
    from resources.runtimes.transformers_runtime import TransformersRuntime

    runtime = TransformersRuntime(RuntimeSpec(max_batch=8), model_path)
    settings: dict = {}
    bare = evaluate(
        runtime,
        NoRetrieval(answering),
        questions,
        [System("base", None, "base")],
        settings,
        TOKENS,
        2,
    )
    grounded = evaluate(
        runtime,
        answering,
        questions,
        [
            System("base", None, "base"),
            System("adapter", AdapterRef("bench/serve/v1", peft_dir=adapter_dir), "adapter"),
        ],
        settings,
        TOKENS,
        2,
    )
    return {
        "questions": sum(q["kind"] == "answer" for q in questions),
        "refusal_probes": sum(q["kind"] != "answer" for q in questions),
        "retrieval_recall": round(grounded["retrieval_recall"], 3),
        "base_without_retrieval": bare["summary"]["base"],
        "base_with_retrieval": grounded["summary"]["base"],
        "adapter_with_retrieval": grounded["summary"]["adapter"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, help="PEFT adapter folder (default: train one)")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--requests", type=int, default=16, help="requests at concurrency 8")
    parser.add_argument("--max-questions", type=int, default=40)
    parser.add_argument("--skip-llama-cpp", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()

    _, model_path = resolve_base_model()
    loaded, examples = corpus(model_path)
    chunks = [c.to_dict() for c in loaded]
    started = time.perf_counter()
    adapter_dir = args.adapter or train_adapter(model_path, examples, args.train_steps)
    train_s = time.perf_counter() - started
    index = build_index(chunks)
    answering = Answering(index)
    gold = sorted(examples["gold"], key=lambda e: e.id)[: args.max_questions]
    questions = [
        {
            "id": e.id,
            "kind": "answer",
            "question": e.question,
            "reference": e.answer,
            "document_id": e.document_id,
        }
        for e in gold
    ]
    probes = refusal_questions(loaded, 13)[:8]
    questions += [
        {
            "id": f"r{i}",
            "kind": "refusal",
            "question": q,
            "reference": DEFAULT_REFUSAL,
            "document_id": None,
        }
        for i, q in enumerate(probes)
    ]
    questions += [
        {
            "id": f"x{i}",
            "kind": "escalation",
            "question": q,
            "reference": DEFAULT_ESCALATION,
            "document_id": None,
        }
        for i, q in enumerate(escalation_questions(loaded, 13)[:4])
    ]
    prompts = [
        p.messages
        for p in (answering.prepare(q["question"]) for q in questions)
        if p.refusal is None
    ]
    prompts = (prompts * 4)[: max(args.requests, 8)]
    results: dict = {
        "examples": {k: len(v) for k, v in examples.items()},
        "corpus": "sample_data/acme-handbook",
        "machine": {"cpus": os.cpu_count()},
        "answer_tokens": TOKENS,
        "adapter": str(adapter_dir),
        "adapter_train_seconds": round(train_s, 1),
        "prompt_tokens_mean": None,
    }
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    lengths = [
        len(
            tok(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False))["input_ids"]
        )
        for p in prompts
    ]
    results["prompt_tokens_mean"] = round(sum(lengths) / len(lengths), 1)
    if not args.skip_speed:
        results["transformers"] = bench_transformers(
            model_path, adapter_dir, prompts, args.requests
        )
    if not args.skip_llama_cpp and not args.skip_speed:
        results["llama_cpp"] = bench_llama_cpp(model_path, adapter_dir, prompts, args.requests)
    if not args.skip_quality:
        results["quality"] = quality(model_path, adapter_dir, answering, questions)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
