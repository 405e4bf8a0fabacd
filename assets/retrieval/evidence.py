"""Evidence: the sentences of the retrieved passages that answer a question.

Chunks are what retrieval ranks; a chunk of a reference manual holds several facts, and the
one a question asks about is a sentence or two of it. `select_evidence` scores every sentence
of the best chunks against the question and returns, per chunk, the passage to quote: the
paragraph around the best sentence (whole when short), or the sentences of it that cover the
question when it is long, prefixed by the entry they belong to (the chunk's last heading: a
setting, an option, a function, a section).

A sentence's score adds to its chunk's fused retrieval score (BM25 coverage + MiniLM cosine)
UNIT_WEIGHT x (UNIT_LEXICAL x lexical + (1 - UNIT_LEXICAL) x cosine), where lexical is the
IDF-weighted share of the question's terms found in the sentence or its entry's name and
cosine compares the question with "entry: sentence". The weights are the best of a small grid
on three public corpora with hand-written questions (bench/corpora: a Markdown manual, a PDF
manual and a 500-page HTML manual; `bench/quality.py` measures them), not on the gold set
that the quality bench reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assets.retrieval.lexical import tokenize

UNIT_WEIGHT = 1.0
UNIT_LEXICAL = 0.7
# A paragraph up to this many words is quoted whole; a longer one is cut around its best
# sentence.
QUOTE_WORDS = 60
# An entry (a chunk under its own heading) this short is quoted whole: its first paragraph
# defines what a later one qualifies.
ENTRY_WORDS = 100
CANDIDATES = 8
EVIDENCE_VERSION = "evidence-v1"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[\-`‘“])")
_HEADING = re.compile(r"^#{1,6}\s")
_PARAGRAPH = re.compile(r"\S.*?(?=\n\s*\n|\Z)", re.S)
_ANCHOR_SYMBOLS = " :;,.¶§#"


@dataclass(frozen=True)
class Sentence:
    """A sentence of a chunk: its text and its characters within the chunk's text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Evidence:
    """The quoted passage of one retrieved chunk, and how well it answers the question."""

    hit: Any  # a retrieval hit (`grounding.Retrieved` or `hybrid.HybridRetrieved`)
    subject: str  # the entry the sentences belong to (the chunk's last heading), may be ""
    sentences: list[Sentence]
    score: float
    lexical: float  # best sentence: IDF-weighted share of the question's terms it holds
    dense: float  # best sentence: cosine with the question
    coverage: float = 0.0  # the whole passage: IDF-weighted share of the question's terms
    missing: list[str] = field(default_factory=list)  # question terms the passage lacks

    @property
    def chunk(self) -> dict:
        return self.hit.chunk

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def quote(self) -> str:
        """The passage as an answer quotes it: "<entry>: <sentences>"."""
        text = self.text
        if self.subject and not text.lower().startswith(self.subject.lower()):
            return f"{self.subject}: {text}"
        return text

    def span(self) -> tuple[int, int]:
        """Characters of the quoted sentences within the cited page."""
        base = int(self.chunk.get("start", 0))
        return base + self.sentences[0].start, base + self.sentences[-1].end

    def citation(self) -> dict:
        start, end = self.span()
        return {**self.hit.citation(), "quote": self.text, "quote_start": start, "quote_end": end}


def prefer_reference(evidence: list[Evidence], hubs: dict[str, int]) -> list[Evidence]:
    """The same passage quoted from several documents (text one manual page includes from
    another) is cited first from the document that shares passages with the most others (the
    reference page: `HybridIndex.document_hubs`); the order is otherwise kept."""
    if len(evidence) < 2 or not hubs:
        return evidence
    key = " ".join(evidence[0].text.lower().split())
    copies = [e for e in evidence if " ".join(e.text.lower().split()) == key]
    if len(copies) < 2:
        return evidence
    first = max(copies, key=lambda e: (hubs.get(e.chunk["document_id"], 0), e.score))
    return [first, *(e for e in evidence if e is not first)]


# --- the kind of answer a question asks for ----------------------------------------------------

# A question asks for a figure, a setting's name, an option, a file, or a name in code; a
# sentence holding a new token of that kind (one the question does not already hold) is more
# likely its answer. Read from the question's wording only.
_ASKS = {
    "number": re.compile(
        r"\bhow (?:many|much|long|old|big|large|often|far|high|low|wide|deep|fast)\b|"
        r"\bwhat (?:size|length|number|percentage|year|port|version|resolution|timeout)\b|"
        r"\b(?:maximum|minimum|max|min|limit|largest|smallest|highest|lowest)\b|"
        r"\b(?:what|which) range\b|\brange of\b|"
        r"\b(?:exit|status|return|error|response) code\b|\b(?:what|which) (?:\w+ )?status\b",
        re.IGNORECASE,
    ),
    "env": re.compile(r"\benvironment variables?\b|\benv(?:ironment)? var\b", re.IGNORECASE),
    "option": re.compile(
        r"\b(?:which|what) (?:\w+ ){0,3}(?:option|flag|switch)s?\b|\bcommand[- ]line option",
        re.IGNORECASE,
    ),
    "code": re.compile(
        r"\b(?:which|what) (?:\w+ ){0,2}(?:function|command|method|routine|argument|parameter|"
        r"variable|setting|target|key|keyword|class|module|package|field|property|"
        r"configuration variable)s?\b",
        re.IGNORECASE,
    ),
    "file": re.compile(
        r"\b(?:which|what|where) (?:\w+ ){0,3}(?:file|directory|folder|path)s?\b", re.I
    ),
}
_KINDS = {
    "number": re.compile(r"(?<![\w.])\d[\d,.]*(?:\s?(?:%|[kKMGT]i?B|bytes?|ms|s\b))?"),
    "env": re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\$[A-Z][A-Z0-9_]+"),
    "option": re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*"),
    "code": re.compile(
        r"`[^`]+`|\b[A-Za-z_][\w]*(?:[._:][\w]+)+\b|\b[A-Za-z_]\w*\s?\(|(?<![\w-])--?[A-Za-z][\w-]*|"
        r"\b[a-z]+[A-Z]\w*\b|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"
    ),
    "file": re.compile(r"(?:~|\.{0,2})/[\w./-]+|\b[\w-]*\.[a-z][a-z0-9]{0,5}\b|(?<![\w])\.[\w-]+"),
}
ANSWER_KIND_BONUS = 0.15
# A manual-page or footnote reference ("git-gc(1)", "option[7]") is not a figure.
_REFERENCE_MARK = re.compile(r"(?<=\w)(?:\(\d{1,2}\)|\[\d{1,3}\])")


def answer_kinds(question: str) -> list[str]:
    """The kinds of token the question asks for (number, env, option, code, file)."""
    return [kind for kind, pattern in _ASKS.items() if pattern.search(question)]


def holds_kind(sentence: str, kinds: Sequence[str], question: str) -> bool:
    """Whether the sentence holds a token of one of `kinds` that the question does not."""
    if not kinds:
        return False
    asked = question.lower()
    sentence = _REFERENCE_MARK.sub("", sentence)
    for kind in kinds:
        for token in _KINDS[kind].findall(sentence):
            token = token.strip("` (.,;:").lower()
            if token and token not in asked:
                return True
    return False


CODE_LINE_PENALTY = 0.1
# A follow-up's own terms against those of the question it follows; a sentence already quoted.
FOCUS_WEIGHT = 2.0
REPEAT_PENALTY = 0.3


def _folded_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


_PLAIN_WORD = re.compile(r"^[A-Za-z][a-z]*[.,;:]?$")


def looks_like_code(sentence: str) -> bool:
    """A line of code or a command synopsis rather than prose: few plain words."""
    words = sentence.split()
    if len(words) < 3:
        return False
    plain = sum(bool(_PLAIN_WORD.match(w)) for w in words)
    return plain / len(words) < 0.4


def subject_of(chunk: dict) -> str:
    heading = chunk.get("heading") or []
    if not heading:
        return ""
    return re.sub(r"^#+\s*", "", str(heading[-1])).strip(_ANCHOR_SYMBOLS)


def paragraphs(text: str) -> list[list[Sentence]]:
    """The chunk's paragraphs (headings left out), each as its sentences; list items and table
    rows (one per line) are sentences of their own."""
    out: list[list[Sentence]] = []
    for block in _PARAGRAPH.finditer(text):
        sentences: list[Sentence] = []
        offset = block.start()
        for line in block.group(0).split("\n"):
            line_start = offset
            offset += len(line) + 1
            if not line.strip() or _HEADING.match(line):
                continue
            position = 0
            for piece in _SENTENCE.split(line):
                found = line.find(piece, position)
                position = found + len(piece)
                stripped = piece.strip()
                if stripped:
                    start = line_start + found + (len(piece) - len(piece.lstrip()))
                    sentences.append(Sentence(stripped, start, start + len(stripped)))
        if sentences:
            out.append(sentences)
    return out


def _words(sentences: Sequence[Sentence]) -> int:
    return sum(len(s.text.split()) for s in sentences)


def passage(
    paragraph: list[Sentence],
    best: int,
    terms: set[str],
    subject_terms: set[str],
    wanted: Callable[[str], bool] = lambda text: False,
) -> list[Sentence]:
    """What to quote of a paragraph whose best sentence is `best`: all of it when short; else
    the best sentence, the paragraph's other sentences that add question terms it lacks or
    hold the kind of answer asked for (`wanted`), and the sentences that follow it, within
    QUOTE_WORDS."""
    if _words(paragraph) <= QUOTE_WORDS:
        return list(paragraph)
    chosen = {best}
    covered = set(tokenize(paragraph[best].text)) | subject_terms
    for j, sentence in enumerate(paragraph):
        own = set(tokenize(sentence.text))
        adds = (terms & own) - covered or (
            wanted(sentence.text) and not wanted(paragraph[best].text)
        )
        if (
            j != best
            and adds
            and _words([paragraph[k] for k in chosen] + [sentence]) <= QUOTE_WORDS
        ):
            chosen.add(j)
            covered |= own
    j = best + 1
    while (
        j < len(paragraph)
        and _words([paragraph[k] for k in chosen] + [paragraph[j]]) <= QUOTE_WORDS
    ):
        chosen.add(j)
        j += 1
    return [paragraph[k] for k in sorted(chosen)]


def select_evidence(
    question: str,
    hits: Sequence[Any],
    idf: Callable[[str], float],
    embed: Callable[[Sequence[str]], np.ndarray] | None,
    focus: str = "",
    said: Sequence[str] = (),
) -> list[Evidence]:
    """Each hit's evidence for the question, best first (one per chunk). `idf` weighs the
    question's terms (the index's lexical half); `embed` gives L2-normalised embeddings (None:
    lexical only).

    In a conversation `question` is the follow-up with the question it follows; `focus` is the
    follow-up alone, whose terms weigh FOCUS_WEIGHT times as much (they say what is asked now),
    and `said` holds the answers already given: a sentence they quote loses REPEAT_PENALTY,
    since a user asking again wants what was not said."""
    terms = list(dict.fromkeys(tokenize(question)))
    focused = set(tokenize(focus))
    weights = {t: max(idf(t), 0.0) * (FOCUS_WEIGHT if t in focused else 1.0) for t in terms}
    repeated = [_folded_text(text) for text in said if text]
    total = sum(weights.values()) or 1.0
    candidates: list[tuple[int, int, int, str, set[str]]] = []  # hit, paragraph, sentence
    parts: list[list[list[Sentence]]] = []
    for h, hit in enumerate(hits):
        paras = paragraphs(hit.chunk["text"])
        parts.append(paras)
        subject = subject_of(hit.chunk)
        subject_terms = set(tokenize(subject))
        for p, paragraph in enumerate(paras):
            for s, _ in enumerate(paragraph):
                candidates.append((h, p, s, subject, subject_terms))
    if not candidates:
        return []
    if embed is not None:
        texts = [
            (f"{subject}: " if subject else "") + parts[h][p][s].text
            for h, p, s, subject, _ in candidates
        ]
        vectors = np.asarray(embed([question, *texts]), dtype=np.float32)
        dense = vectors[1:] @ vectors[0]
    else:
        dense = np.zeros(len(candidates), dtype=np.float32)
    kinds = answer_kinds(question)
    best: dict[int, tuple[float, int, int, float, float]] = {}
    for (h, p, s, _, subject_terms), cosine in zip(candidates, dense, strict=True):
        text = parts[h][p][s].text
        own = set(tokenize(text)) | subject_terms
        lexical = sum(weights[t] for t in terms if t in own) / total
        score = float(hits[h].score) + UNIT_WEIGHT * (
            UNIT_LEXICAL * lexical + (1 - UNIT_LEXICAL) * float(cosine)
        )
        if repeated and any(_folded_text(text) in previous for previous in repeated):
            score -= REPEAT_PENALTY
        if holds_kind(text, kinds, question):
            score += ANSWER_KIND_BONUS
        elif not kinds and looks_like_code(text):
            score -= CODE_LINE_PENALTY  # a synopsis or code line states no fact in words
        if h not in best or score > best[h][0]:
            best[h] = (score, p, s, lexical, float(cosine))
    out = []
    for h, (score, p, s, lexical, cosine) in best.items():
        subject = subject_of(hits[h].chunk)
        subject_terms = set(tokenize(subject))
        entry = [sentence for paragraph in parts[h] for sentence in paragraph]
        if _words(entry) <= ENTRY_WORDS:
            quoted = entry  # a short entry is quoted whole, whichever paragraph scored best
        else:
            quoted = passage(
                parts[h][p],
                s,
                set(terms),
                subject_terms,
                lambda text: holds_kind(text, kinds, question),
            )
        held = subject_terms.union(*(set(tokenize(q.text)) for q in quoted))
        coverage = sum(weights[t] for t in terms if t in held) / total
        missing = [t for t in terms if t not in held]
        out.append(Evidence(hits[h], subject, quoted, score, lexical, cosine, coverage, missing))
    out.sort(key=lambda e: -e.score)
    return out
