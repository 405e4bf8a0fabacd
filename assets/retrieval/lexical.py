"""Lexical retrieval (Okapi BM25) over a project's chunks."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Command-line options (-a, --no-verify) are terms of their own; so are identifiers that hold
# connectors (gc.autoPackLimit, stash@{0}, pre-commit, http://host/path, employee's).
_OPTION = r"(?<![\w-])--?[a-z0-9][a-z0-9-]*"
_WORD = r"[a-z0-9_]+(?:[.:@/'{}\[\]-]+[a-z0-9_]+)*\}?"
_TOKEN = re.compile(f"{_OPTION}|{_WORD}", re.IGNORECASE)
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_CONNECTOR = re.compile(r"[^A-Za-z0-9]")
_POSSESSIVE = re.compile(r"'s$", re.IGNORECASE)
TOKENIZER_VERSION = "terms-v2"
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "may",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "any",
        "all",
    ]
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# Irregular forms the Snowball stemmer leaves apart from their verb ("shown" / "show").
IRREGULAR = {
    "shown": "show",
    "showed": "show",
    "given": "give",
    "gave": "give",
    "taken": "take",
    "took": "take",
    "written": "write",
    "wrote": "write",
    "made": "make",
    "done": "do",
    "did": "do",
    "gone": "go",
    "went": "go",
    "seen": "see",
    "saw": "see",
    "known": "know",
    "knew": "know",
    "chosen": "choose",
    "chose": "choose",
    "begun": "begin",
    "began": "begin",
    "run": "run",
    "ran": "run",
    "kept": "keep",
    "left": "leave",
    "found": "find",
    "held": "hold",
    "built": "build",
    "sent": "send",
    "set": "set",
    "put": "put",
    "read": "read",
    "got": "get",
    "gotten": "get",
    "brought": "bring",
    "bought": "buy",
    "thought": "think",
    "told": "tell",
    "said": "say",
    "paid": "pay",
    "meant": "mean",
    "lost": "lose",
    "spent": "spend",
    "broken": "break",
    "broke": "break",
    "frozen": "freeze",
    "hidden": "hide",
    "hid": "hide",
    "driven": "drive",
    "grown": "grow",
    "drawn": "draw",
    "thrown": "throw",
    "stolen": "steal",
    "forgotten": "forget",
    "understood": "understand",
    "rewritten": "rewrite",
    "overridden": "override",
    "overrode": "override",
    "children": "child",
    "data": "data",
}


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    if word.isdigit():
        return word
    return _stemmer().stemWord(IRREGULAR.get(word, word))


@lru_cache(maxsize=200_000)
def _terms(token: str) -> tuple[str, ...]:
    """One token's terms: a plain word lowercased and stemmed (defaults -> default); an
    identifier or option whole and lowercased, then its parts (split at connectors and
    camelCase: gc.autoPackLimit -> gc, auto, pack, limit) stemmed, so both the exact name and
    a paraphrase of it match."""
    token = _POSSESSIVE.sub("", token)
    lowered = token.lower()
    camel = not token.isupper() and any(c.isupper() for c in token[1:])
    compound = camel or bool(_CONNECTOR.search(token))
    if not compound:
        return () if lowered in STOPWORDS else (_stem(lowered),)
    parts = [p.lower() for p in _PARTS.findall(token)]
    out = [lowered]
    out.extend(_stem(p) for p in parts if len(p) > 1 and p not in STOPWORDS and p != lowered)
    return tuple(out)


def tokenize(text: str) -> list[str]:
    """Index and query terms of a text, in order (repeats kept for term frequency)."""
    return [term for token in _TOKEN.findall(text) for term in _terms(token)]


@dataclass(frozen=True)
class Hit:
    index: int
    score: float


class BM25Index:
    """Okapi BM25 (k1=1.5, b=0.75) over a fixed list of texts."""

    def __init__(self, texts: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [Counter(tokenize(t)) for t in texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def search(self, query: str, k: int = 3) -> list[Hit]:
        terms = set(tokenize(query))
        hits = []
        for i, (doc, length) in enumerate(zip(self.docs, self.lengths, strict=True)):
            score = 0.0
            for term in terms:
                tf = doc.get(term, 0)
                if tf:
                    norm = tf + self.k1 * (1 - self.b + self.b * length / (self.avg_length or 1))
                    score += self.idf[term] * tf * (self.k1 + 1) / norm
            if score > 0:
                hits.append(Hit(i, score))
        hits.sort(key=lambda h: (-h.score, h.index))
        return hits[:k]
