"""Dataset builder figures on the demo corpus (sample_data/acme-handbook), on CPU: examples per
second of each generator, and groundedness: the share of generated answers whose key content
(content words and numbers) is found in the cited chunk.

Each file is extracted and normalised as onboarding does (without PII screening), chunked by the
base model's tokenizer (256 tokens, 32 overlap), then:
- `deterministic`: every chunk;
- `model`: the project's base model (SmolLM2-135M-Instruct) through the model-based generator's
  few-shot prompt, on `--model-chunks` chunks spread over the documents;
- `model_zero_shot` (baseline): the same model and chunks asked plainly, without the worked
  example, to show what the prompt buys.
An answer counts as grounded when at least `--grounded-at` of its content words are in the chunk.
Prints JSON.

    .venv/bin/python -m bench.dataset [--model-chunks 8 --max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.dataset.assets import spread  # noqa: E402
from assets.dataset.chunking import Chunk, chunk_pages, tokenizer_counter  # noqa: E402
from assets.dataset.generate import DeterministicGenerator, QAPair, build_examples  # noqa: E402
from assets.dataset.model_generator import (  # noqa: E402
    LocalChatClient,
    ModelGenerator,
    ModelGeneratorConfig,
    parse_pairs,
)
from assets.dataset.refusals import (  # noqa: E402
    escalation_questions,
    policy_examples,
    refusal_questions,
)
from assets.dataset.scoring import groundedness  # noqa: E402
from assets.normalization.extract import extract  # noqa: E402
from assets.normalization.normalize import normalize_text, remove_repeated_lines  # noqa: E402
from assets.normalization.sniff import sniff_type  # noqa: E402
from resources.model_runtime import resolve_base_model  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "sample_data" / "acme-handbook"


def load_chunks(corpus: Path, model_path: Path) -> list[Chunk]:
    count = tokenizer_counter(model_path)
    chunks: list[Chunk] = []
    for path in sorted(corpus.iterdir()):
        data = path.read_bytes()
        extraction = extract(data, sniff_type(data, path.name))
        cleaned, _ = remove_repeated_lines([normalize_text(p.text) for p in extraction.pages])
        pages = [
            {"number": p.number, "text": t} for p, t in zip(extraction.pages, cleaned, strict=True)
        ]
        chunks.extend(
            chunk_pages(
                path.stem, path.name, pages, max_tokens=256, overlap_tokens=32, count_tokens=count
            )
        )
    return chunks


class ZeroShot:
    """Baseline: the same model asked plainly for question/answer pairs."""

    def __init__(self, client: LocalChatClient, max_new_tokens: int) -> None:
        self.client = client
        self.max_new_tokens = max_new_tokens
        self.name = "model-zero-shot"

    def pairs(self, chunks: list[Chunk]) -> list[list[QAPair]]:
        prompts = [
            [
                {
                    "role": "user",
                    "content": f"{c.text}\n\nWrite question and answer pairs about this text, "
                    "as lines 'Q: ...' and 'A: ...'.",
                }
            ]
            for c in chunks
        ]
        return [parse_pairs(r) for r in self.client.complete(prompts, self.max_new_tokens, 0.0)]


def measure(generator, chunks: list[Chunk], grounded_at: float) -> dict:
    started = time.perf_counter()
    pairs = generator.pairs(chunks)
    made = build_examples(chunks, pairs, generator.name, pool=chunks)
    seconds = time.perf_counter() - started
    texts = {c.id: c.text for c in chunks}
    scores = [groundedness(e.answer, texts[e.chunk_id]) for e in made]
    return {
        "chunks": len(chunks),
        "examples": len(made),
        "seconds": round(seconds, 3),
        "examples_per_second": round(len(made) / seconds, 2) if seconds else None,
        "groundedness_share": round(sum(s >= grounded_at for s in scores) / len(scores), 3)
        if scores
        else None,
        "groundedness_mean": round(statistics.mean(scores), 3) if scores else None,
        "samples": [
            {"question": e.question, "answer": e.answer, "groundedness": round(s, 3)}
            for e, s in list(zip(made, scores, strict=True))[:3]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--model-chunks", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--grounded-at", type=float, default=0.8)
    parser.add_argument("--no-model", action="store_true", help="deterministic figures only")
    args = parser.parse_args()

    _, model_path = resolve_base_model()
    chunks = load_chunks(args.corpus, model_path)
    results: dict = {
        "corpus": str(
            args.corpus.relative_to(Path.cwd())
            if args.corpus.is_relative_to(Path.cwd())
            else args.corpus
        ),
        "chunks": len(chunks),
        "grounded_at": args.grounded_at,
        "cpu_threads": os.cpu_count(),
        "generators": {},
    }
    results["generators"]["deterministic"] = measure(
        DeterministicGenerator(), chunks, args.grounded_at
    )

    started = time.perf_counter()
    policy = policy_examples(refusal_questions(chunks, 0), "refusal", "No.", chunks, "train")
    policy += policy_examples(
        escalation_questions(chunks, 0), "escalation", "Ask HR.", chunks, "train"
    )
    seconds = time.perf_counter() - started
    results["generators"]["refusal_and_escalation"] = {
        "examples": len(policy),
        "examples_per_second": round(len(policy) / seconds, 1),
    }

    if not args.no_model:
        sample = spread(chunks, args.model_chunks)
        client = LocalChatClient(model_path)
        client.complete([[{"role": "user", "content": "Hello"}]], 2, 0.0)  # load and warm up
        config = ModelGeneratorConfig(max_new_tokens=args.max_new_tokens)
        results["generators"]["model"] = measure(
            ModelGenerator(client, config), sample, args.grounded_at
        )
        results["generators"]["model_zero_shot_baseline"] = measure(
            ZeroShot(client, args.max_new_tokens), sample, args.grounded_at
        )
        results["model"] = {"path": model_path.name, "max_new_tokens": args.max_new_tokens}
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
