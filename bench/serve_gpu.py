"""Serving throughput on a GPU: our transformers runtime (concurrent requests batched into one
generation pass, each row with its own LoRA adapter) vs plain `model.generate`, one call per
request, at concurrency 1 and 8. Prints JSON.

The model is randomly initialised in SmolLM2's shapes (135M, and 1.7B with `--large`): speed
depends on shapes, not weights, and the GPU machine cannot receive the packaged weights. The
tokenizer comes from `--tokenizer` (a folder with SmolLM2's tokenizer files). Prompts are
grounded prompts of the usual shape built from the demo corpus text; every answer is 64 tokens
(end of sequence suppressed) so both sides generate the same amount.

    python3 bench/serve_gpu.py --tokenizer DIR [--large] [--requests 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKENS = 64
SHAPES = {
    "SmolLM2-135M": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
    ),
    "SmolLM2-1.7B": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=24,
        num_attention_heads=32,
        num_key_value_heads=32,
    ),
}


def make_model(tokenizer_dir: Path, shape: str, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    config = LlamaConfig(
        vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True, **SHAPES[shape]
    )
    config.eos_token_id = None  # no end of sequence: every answer runs to the token limit
    config.bos_token_id = 1
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    peft = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    peft.save_pretrained(out / "adapter")
    return out


def prompts(n: int) -> list[list[dict[str, str]]]:
    from assets.dataset.prompt import ContextPassage, build_messages

    texts = []
    for path in sorted((ROOT / "sample_data" / "acme-handbook").iterdir()):
        if path.suffix in (".md", ".txt", ".html", ".csv"):
            texts.append((path.name, path.read_text(errors="ignore")))
    out = []
    for i in range(n):
        passages = [
            ContextPassage(f"{name}, page 1", text[(i * 97) % 400 : (i * 97) % 400 + 900])
            for name, text in texts[i % 3 : i % 3 + 3]
        ]
        out.append(
            build_messages(f"Question {i}: what does the policy say about item {i}?", passages)
        )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats(samples: list[tuple[float, float, int]], wall: float) -> dict:
    totals = [s[1] for s in samples]
    tokens = sum(s[2] for s in samples)
    return {
        "requests": len(samples),
        "tokens_per_second": round(tokens / wall, 1),
        "latency_p50_s": round(percentile(totals, 50), 3),
        "latency_p95_s": round(percentile(totals, 95), 3),
        "first_token_p50_s": round(percentile([s[0] for s in samples], 50), 3),
    }


def drive(one, items, concurrency: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        samples = list(pool.map(one, items))
    return stats(samples, time.perf_counter() - started)


def timed(pieces) -> tuple[float, float, int]:
    started = time.perf_counter()
    first, n = None, 0
    for _ in pieces:
        if first is None:
            first = time.perf_counter() - started
        n += 1
    total = time.perf_counter() - started
    return (first or total, total, n)


def measure(folder: Path, requests: int, device: str) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from resources.runtimes import AdapterRef, RuntimeSpec
    from resources.runtimes.transformers_runtime import TransformersRuntime

    items = prompts(requests)
    runtime = TransformersRuntime(RuntimeSpec(device=device, max_batch=8), folder)
    adapter = AdapterRef("bench/gpu/v1", peft_dir=folder / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device),
        str(folder / "adapter"),
    ).eval()

    class Counter:
        """A streamer that yields one item per generated token (the plain path's timing)."""

        def __init__(self) -> None:
            self.items: list = []
            self.event = threading.Condition()
            self.done = False
            self.prompt = True

        def put(self, value) -> None:
            if self.prompt:
                self.prompt = False
                return
            with self.event:
                self.items.append(1)
                self.event.notify()

        def end(self) -> None:
            with self.event:
                self.done = True
                self.event.notify()

        def __iter__(self):
            seen = 0
            while True:
                with self.event:
                    while len(self.items) == seen and not self.done:
                        self.event.wait()
                    if len(self.items) == seen and self.done:
                        return
                    seen += 1
                yield 1

    def ours(messages):
        pieces = []
        started = time.perf_counter()
        stream = runtime.stream(messages, adapter, TOKENS)
        first = None
        for p in stream:
            if first is None:
                first = time.perf_counter() - started
            pieces.append(p)
        total = time.perf_counter() - started
        return (
            first or total,
            total,
            len(tokenizer("".join(pieces), add_special_tokens=False)["input_ids"]),
        )

    def plain_one(messages):
        enc = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)
        streamer = Counter()
        worker = threading.Thread(
            target=lambda: plain.generate(
                **enc,
                max_new_tokens=TOKENS,
                min_new_tokens=TOKENS,
                do_sample=False,
                streamer=streamer,
                pad_token_id=0,
            )
        )
        with torch.inference_mode():
            worker.start()
            result = timed(streamer)
            worker.join()
        return result

    out = {}
    for name, fn in (("ours", ours), ("plain_generate", plain_one)):
        fn(items[0])
        out[name] = {
            "concurrency_1": drive(fn, items[: max(4, requests // 4)], 1),
            "concurrency_8": drive(fn, items, 8),
        }
        out[name]["scaling_8_vs_1"] = round(
            out[name]["concurrency_8"]["tokens_per_second"]
            / out[name]["concurrency_1"]["tokens_per_second"],
            2,
        )
    for c in ("concurrency_1", "concurrency_8"):
        out[f"ratio_ours_vs_plain_{c}"] = round(
            out["ours"][c]["tokens_per_second"] / out["plain_generate"][c]["tokens_per_second"], 2
        )
    out["largest_batch"] = runtime.largest_batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch

    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    results = {"device": name, "torch": torch.__version__, "answer_tokens": TOKENS}
    for shape in ["SmolLM2-135M", *(["SmolLM2-1.7B"] if args.large else [])]:
        folder = Path(tempfile.mkdtemp(prefix="serve-gpu-"))
        make_model(args.tokenizer, shape, folder)
        results[shape] = measure(folder, args.requests, args.device)
        os.sync()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
