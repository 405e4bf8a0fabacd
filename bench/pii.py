"""PII screening throughput: stock Presidio one text at a time against PiiScreener.analyze_many.

Usage: .venv/bin/python -m bench.pii [--paragraphs 300] [--join 1] [--rounds 3]
    [--pii-rate 0.25] [--seed 7] [--blas-threads 1|auto]

Both sides look for the same entities at the same threshold. The baseline is a stock
`AnalyzerEngine` on its own spaCy engine (full pipeline), called once per text; `batched_stock`
is the same engine through `BatchAnalyzerEngine`, to show what batching alone buys.
`ratio_cpu_time` compares this process's CPU seconds (less disturbed by other work on the
machine). `agreement` is the share of texts on which ours and the baseline find the same spans;
`only_ours` / `only_baseline` count the spans, per type, that one side found and the other
did not (ours adds phone context words such as "tel"). `residual_after_redaction` counts
findings in the redacted texts (names NER sees only once their neighbours are redacted);
`residual_after_second_pass` counts them after those are redacted too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult

T = TypeVar("T")

FIRST = ["Sarah", "James", "Priya", "Mohammed", "Olivia", "Liam", "Chen", "Fatima", "Lucas", "Emma"]
LAST = ["Thompson", "Patel", "Okafor", "Nguyen", "Schmidt", "Garcia", "Kowalski", "Walsh", "Ito"]
DOMAINS = ["acme-corp.com", "example.org", "hr.acme-corp.com", "mail.example.net"]
PHONES = ["+44 20 7946 0958", "020 7946 0321", "(212) 555-0147", "+1 415 555 0199", "07700 900461"]
FILLER = [
    "Annual leave requests must be submitted through the portal at least {n} days in advance.",
    "The probation period for new starters is {n} weeks, after which a review meeting is held.",
    "Expenses above £{amount} require written approval from the budget holder.",
    "All staff must complete the information security training before accessing client systems.",
    "Flexible working arrangements are reviewed every {n} months with the line manager.",
    "The company matches pension contributions up to {n} percent of basic salary from {year}.",
    "Overtime is paid at time and a half for hours worked beyond the contracted {n} hours.",
    "Grievances should first be raised informally with the immediate supervisor.",
    "Parental leave entitlements are described in section {n}.{m} of the family policy.",
    "Remote workers are reimbursed up to £{amount} for home office equipment on receipt.",
    "Since {year} the policy applies to contractors engaged for more than {n} weeks.",
    "Meeting rooms on floor {n} can be booked through the facilities calendar.",
]
# (template, weight): names, e-mails and phones are common, identity numbers rare.
PII_SENTENCES = [
    ("Please contact {name} at {email} for questions about this policy.", 6),
    ("{name} from the people team can be reached by phone on {phone}.", 4),
    ("For payroll queries, e-mail {email} or telephone {phone}.", 4),
    ("The case was escalated by {name} on behalf of {name2}.", 5),
    ("{name}'s mobile number is {phone} and her manager is {name2}.", 3),
    ("Reimbursement was sent to IBAN GB82 WEST 1234 5698 7654 32 for {name}.", 1),
    ("The employee's NHS number 943 476 5919 was recorded by {name}.", 1),
    ("A corporate card ending 4111 1111 1111 1111 was issued to {name}.", 1),
    ("The VPN log shows {name} connected from 10.20.30.{octet}.", 1),
    ("{name} provided social security number 536-22-8726 for the US payroll.", 1),
]


def corpus(paragraphs: int, seed: int, pii_rate: float = 0.25) -> list[str]:
    """Deterministic HR-handbook paragraphs of 4-12 sentences, `pii_rate` of them with PII."""
    rng = random.Random(seed)
    templates = [template for template, _ in PII_SENTENCES]
    weights = [weight for _, weight in PII_SENTENCES]

    def name() -> str:
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"

    texts = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(4, 12)):
            if rng.random() < pii_rate:
                first, last = rng.choice(FIRST), rng.choice(LAST)
                template = rng.choices(templates, weights)[0]
                sentences.append(
                    template.format(
                        name=f"{first} {last}",
                        name2=name(),
                        email=f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}",
                        phone=rng.choice(PHONES),
                        octet=rng.randint(2, 250),
                    )
                )
            else:
                sentences.append(
                    rng.choice(FILLER).format(
                        n=rng.randint(2, 40),
                        m=rng.randint(1, 9),
                        amount=f"{rng.randint(1, 40) * 50:,}",
                        year=rng.randint(2015, 2026),
                    )
                )
        texts.append(" ".join(sentences))
    return texts


def _spans(results: list) -> set[tuple[str, int, int]]:
    return {(r.entity_type, r.start, r.end) for r in results}


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _timed(run: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=300)
    parser.add_argument("--join", type=int, default=1, help="paragraphs per text (1: one each)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best counts")
    parser.add_argument("--pii-rate", type=float, default=0.25, help="share of PII sentences")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--blas-threads",
        default="1",
        help="OPENBLAS_NUM_THREADS for both sides, as deployments should set it; "
        "'auto' leaves OpenBLAS its own thread pool",
    )
    args = parser.parse_args()
    if args.blas_threads != "auto":
        # Read by OpenBLAS when numpy loads, which the imports below do first.
        os.environ["OPENBLAS_NUM_THREADS"] = args.blas_threads
    paragraphs = corpus(args.paragraphs, args.seed, args.pii_rate)
    texts = [
        "\n\n".join(paragraphs[i : i + args.join]) for i in range(0, len(paragraphs), args.join)
    ]
    chars = sum(len(t) for t in texts)

    started = time.perf_counter()
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from assets.pii.screen import NLP_CONFIGURATION, PiiScreener, residual_findings

    import_s = time.perf_counter() - started
    screener, load_s, _ = _timed(PiiScreener)
    entities = list(screener.entities)
    ours = screener.analyze_many(texts)
    rss_ours_mb = _rss_mb()

    stock = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(nlp_configuration=NLP_CONFIGURATION).create_engine(),
        supported_languages=["en"],
    )

    def run_baseline() -> list[list[RecognizerResult]]:
        return [
            stock.analyze(t, language="en", entities=entities, score_threshold=0.5) for t in texts
        ]

    def run_batched_stock() -> list[list[RecognizerResult]]:
        return BatchAnalyzerEngine(analyzer_engine=stock).analyze_iterator(
            texts, language="en", batch_size=64, entities=entities, score_threshold=0.5
        )

    stock.analyze(texts[0], language="en", entities=entities, score_threshold=0.5)
    # Other work shares these CPUs: interleave the sides and keep each side's best round.
    walls: dict[str, list[float]] = {"baseline": [], "ours": [], "batched_stock": []}
    cpus: dict[str, list[float]] = {"baseline": [], "ours": [], "batched_stock": []}
    baseline: list[list[RecognizerResult]] = []
    for round_ in range(args.rounds):
        baseline, wall, cpu = _timed(run_baseline)
        walls["baseline"].append(wall)
        cpus["baseline"].append(cpu)
        ours, wall, cpu = _timed(lambda: screener.analyze_many(texts, batch_size=64))
        walls["ours"].append(wall)
        cpus["ours"].append(cpu)
        if round_ == 0:
            _, wall, cpu = _timed(run_batched_stock)
            walls["batched_stock"].append(wall)
            cpus["batched_stock"].append(cpu)
    best = {side: min(times) for side, times in walls.items()}

    agree = 0
    only_ours: Counter[str] = Counter()
    only_baseline: Counter[str] = Counter()
    for b, o in zip(baseline, ours, strict=True):
        theirs, mine = _spans(b), {(f.entity_type, f.start, f.end) for f in o}
        agree += theirs == mine
        only_ours.update(entity for entity, _, _ in mine - theirs)
        only_baseline.update(entity for entity, _, _ in theirs - mine)
    redacted = [screener.redact(t, f) for t, f in zip(texts, ours, strict=True)]
    residual = residual_findings(redacted, screener)
    second_pass = [screener.redact(t, f) for t, f in zip(redacted, residual, strict=True)]
    print(
        json.dumps(
            {
                "baseline_chars_per_s": round(chars / best["baseline"]),
                "ours_chars_per_s": round(chars / best["ours"]),
                "ratio": round(best["baseline"] / best["ours"], 2),
                "texts": len(texts),
                "chars": chars,
                "ratio_cpu_time": round(min(cpus["baseline"]) / min(cpus["ours"]), 2),
                "batched_stock_chars_per_s": round(chars / best["batched_stock"]),
                "rounds_s": {side: [round(t, 2) for t in times] for side, times in walls.items()},
                "agreement": round(agree / len(texts), 4),
                "only_ours": dict(only_ours),
                "only_baseline": dict(only_baseline),
                "findings": sum(len(f) for f in ours),
                "summary": screener.summarize([f for found in ours for f in found]),
                "residual_after_redaction": sum(len(f) for f in residual),
                "residual_after_second_pass": sum(
                    len(f) for f in residual_findings(second_pass, screener)
                ),
                "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "auto"),
                "import_s": round(import_s, 2),
                "engine_load_s": round(load_s, 2),
                "max_rss_mb_ours": rss_ours_mb,
                "max_rss_mb_both_engines": _rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    main()
