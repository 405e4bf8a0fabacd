"""Near-duplicate recall and precision of the MinHash LSH index against brute-force Jaccard.

A synthetic, seeded corpus: documents of Zipf-distributed pseudo-words, near-duplicates
planted by editing spans of a source, and pairs planted just below the threshold. Every
pair's exact shingle Jaccard is the ground truth; each index configuration is scored on
the pairs it reports. Prints JSON.

The chosen configuration is the index default (128 permutations, bands weighted 0.05/0.95
towards recall) with a margin: candidates whose estimate is within `--margin` below the
threshold are confirmed with `exact_jaccard`. Deciding on the estimate alone cannot reach
0.95 recall when many pairs sit near the threshold, whatever the bands: the estimate errs
by ~0.035 at 0.8 with 128 permutations (0.025 with 256), and pairs within that of the
threshold are lost about half the time.

    .venv/bin/python -m bench.near_dedupe [--documents 1000 --planted 100 --below 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections.abc import Sequence

from assets.dedupe.near import (
    DEFAULT_NUM_PERM,
    DEFAULT_WEIGHTS,
    NearDuplicateIndex,
    exact_jaccard,
    shingles,
)

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]


class _Corpus:
    def __init__(self, seed: int, vocabulary: int = 6000, zipf_s: float = 1.1) -> None:
        self.rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < vocabulary:
            words.add("".join(self.rng.choices(_SYLLABLES, k=self.rng.randint(1, 4))))
        self.words = sorted(words)
        self.rng.shuffle(self.words)
        total = 0.0
        self.cumulative: list[float] = []
        for rank in range(1, vocabulary + 1):
            total += 1.0 / rank**zipf_s
            self.cumulative.append(total)

    def draw(self, n: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=n)

    def document(self) -> list[str]:
        return self.draw(self.rng.randint(150, 400))

    def edit_span(self, words: list[str], max_span: int) -> int:
        """Substitute, delete or insert one run of words; returns how many words it touched."""
        span = self.rng.randint(1, max_span)
        at = self.rng.randrange(len(words))
        op = self.rng.choice(("substitute", "substitute", "delete", "insert"))
        if op == "substitute":
            end = min(at + span, len(words))
            words[at:end] = self.draw(end - at)
            return end - at
        if op == "delete":
            end = min(at + span, len(words))
            del words[at:end]
            return end - at
        words[at:at] = self.draw(span)
        return span


def _build(
    documents: int, planted: int, below: int, threshold: float, seed: int
) -> tuple[list[str], list[set[str]], list[tuple[int, int]]]:
    """Texts, their shingle sets, and the (source, copy) pairs planted by editing 3-15% of words."""
    corpus = _Corpus(seed)
    texts = [" ".join(corpus.document()) for _ in range(documents)]
    words_of = [text.split() for text in texts]
    planted_pairs: list[tuple[int, int]] = []
    for _ in range(planted):
        source = corpus.rng.randrange(documents)
        words = list(words_of[source])
        budget = round(corpus.rng.uniform(0.03, 0.15) * len(words))
        touched = 0
        while touched < budget:
            touched += corpus.edit_span(words, max_span=min(6, budget - touched))
        planted_pairs.append((source, len(texts)))
        texts.append(" ".join(words))
    made = 0
    while made < below:
        original = corpus.rng.choice(words_of)
        words = list(original)
        source_shingles = shingles(" ".join(original))
        similarity = 1.0
        while similarity >= threshold:
            corpus.edit_span(words, max_span=2)
            candidate = shingles(" ".join(words))
            similarity = len(source_shingles & candidate) / len(source_shingles | candidate)
        if similarity >= threshold - 0.05:
            texts.append(" ".join(words))
            made += 1
    sets = [shingles(text) for text in texts]
    return texts, sets, planted_pairs


def _true_pairs(sets: Sequence[set[str]]) -> tuple[dict[tuple[int, int], float], float]:
    started = time.perf_counter()
    similar: dict[tuple[int, int], float] = {}
    sizes = [len(s) for s in sets]
    for i, j in itertools.combinations(range(len(sets)), 2):
        shared = len(sets[i] & sets[j])
        if shared:
            similar[(i, j)] = shared / (sizes[i] + sizes[j] - shared)
    return similar, time.perf_counter() - started


def _evaluate(
    texts: Sequence[str],
    jaccard: dict[tuple[int, int], float],
    threshold: float,
    num_perm: int,
    weights: tuple[float, float],
    margin: float,
    verify: bool,
) -> tuple[dict[str, object], float]:
    """The configuration's figures, and its build plus query time."""
    index = NearDuplicateIndex(threshold, num_perm, margin=margin, weights=weights)
    started = time.perf_counter()
    for i, text in enumerate(texts):
        index.add(str(i), text)
    build_s = time.perf_counter() - started

    started = time.perf_counter()
    found: set[tuple[int, int]] = set()
    checked: dict[tuple[int, int], bool] = {}
    for i, text in enumerate(texts):
        for other, _estimate in index.query(text):
            j = int(other)
            if j == i:
                continue
            pair = (min(i, j), max(i, j))
            if verify and pair not in checked:
                # What the dedupe asset does when it can fetch the candidate's text.
                checked[pair] = exact_jaccard(text, texts[j]) >= threshold
            if not verify or checked[pair]:
                found.add(pair)
    query_s = time.perf_counter() - started

    truth = {pair for pair, sim in jaccard.items() if sim >= threshold}
    hits = truth & found
    near = {pair for pair in truth if jaccard[pair] < threshold + 0.05}
    false_positives = found - truth
    return {
        "num_perm": num_perm,
        "weights": list(weights),
        "bands": index.bands,
        "rows": index.rows,
        "margin": margin,
        "exact_verification": verify,
        "recall": _ratio(len(hits), len(truth)),
        "precision": _ratio(len(hits), len(found)),
        f"recall_jaccard_{threshold:.2f}_to_{threshold + 0.05:.2f}": _ratio(
            len(hits & near), len(near)
        ),
        f"recall_jaccard_from_{threshold + 0.05:.2f}": _ratio(len(hits - near), len(truth - near)),
        f"precision_counting_jaccard_from_{threshold - 0.05:.2f}": _ratio(
            sum(1 for pair in found if jaccard.get(pair, 0.0) >= threshold - 0.05), len(found)
        ),
        "reported_pairs": len(found),
        "missed_pairs": len(truth - found),
        "false_positive_pairs": len(false_positives),
        "lowest_false_positive_jaccard": round(
            min((jaccard.get(pair, 0.0) for pair in false_positives), default=1.0), 4
        ),
        "index_build_s": round(build_s, 3),
        "query_s": round(query_s, 3),
    }, build_s + query_s


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 1.0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--planted", type=int, default=100)
    parser.add_argument(
        "--below", type=int, default=30, help="pairs planted just below the threshold"
    )
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="how far below the threshold an estimate is verified",
    )
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    texts, sets, planted = _build(
        args.documents, args.planted, args.below, args.threshold, args.seed
    )
    generate_s = time.perf_counter() - started
    jaccard, brute_force_s = _true_pairs(sets)
    # The bench's set arithmetic must be exact_jaccard's.
    for i, j in itertools.islice(sorted(jaccard), 0, None, max(1, len(jaccard) // 50)):
        if abs(exact_jaccard(texts[i], texts[j]) - jaccard[(i, j)]) > 1e-12:
            raise RuntimeError(f"brute force disagrees with exact_jaccard on pair {i}, {j}")

    configurations = {
        "datasketch_default_bands": (DEFAULT_NUM_PERM, (0.5, 0.5), 0.0, False),
        "index_default": (DEFAULT_NUM_PERM, DEFAULT_WEIGHTS, 0.0, False),
        "estimate_256_perm": (256, DEFAULT_WEIGHTS, 0.0, False),
        "chosen": (DEFAULT_NUM_PERM, DEFAULT_WEIGHTS, args.margin, True),
    }
    results: dict[str, dict[str, object]] = {}
    elapsed: dict[str, float] = {}
    for name, config in configurations.items():
        results[name], elapsed[name] = _evaluate(texts, jaccard, args.threshold, *config)
    true_pairs = sum(1 for sim in jaccard.values() if sim >= args.threshold)
    report = {
        "threshold": args.threshold,
        "documents": len(texts),
        "base_documents": args.documents,
        "planted_pairs": len(planted),
        "planted_pairs_at_threshold": sum(
            1 for pair in planted if jaccard.get(pair, 0.0) >= args.threshold
        ),
        "planted_just_below_threshold": args.below,
        "true_pairs_at_threshold": true_pairs,
        "pairs_within_0.10_below_threshold": sum(
            1 for sim in jaccard.values() if args.threshold - 0.1 <= sim < args.threshold
        ),
        "generate_s": round(generate_s, 3),
        "brute_force_s": round(brute_force_s, 3),
        **results["chosen"],
        "speedup_vs_brute_force": round(brute_force_s / elapsed["chosen"], 1),
        "configurations": results,
        "total_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
