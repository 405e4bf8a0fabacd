"""One grounded answer, the same way in evaluation and in serving.

1. Requests no document may answer (secrets, personal data, actions, the asker's organisation
   chart: `policy.sensitive_request`) get the project's escalation text.
2. A follow-up question ("and what is its maximum?") is retrieved together with the user's
   previous question (`contextual_query`), and the conversation goes into the prompt.
3. The project's chunks are retrieved and the sentences that answer are selected from them
   (`evidence.select_evidence`).
4. Answerability: below ANSWERABLE_THRESHOLD the project's refusal text answers instead of a
   generation (see `answerability`).
5. Otherwise the adapter generates from the prompt shape it was trained on (the passages, the
   one holding the evidence first), and `compose` checks the generation against the evidence:
   a direct answer whose figures and names the evidence states is kept, followed by the
   quoted evidence; one that states what the evidence does not (a number from a neighbouring
   entry, an invented figure) is dropped, and the quoted evidence answers alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assets.dataset.prompt import passage_label
from assets.retrieval.evidence import CANDIDATES, Evidence, prefer_reference, select_evidence
from assets.retrieval.grounding import GroundingIndex, Retrieved, grounded_messages
from assets.retrieval.lexical import tokenize
from assets.retrieval.policy import sensitive_request
from resources.project_settings import (
    DEFAULT_ESCALATION,
    DEFAULT_REFUSAL,
    DEFAULT_SYSTEM_PROMPT,
    ProjectSettings,
)

TOP_K = 3
# answerability = RETRIEVAL_WEIGHT x retrieval confidence + (1 - RETRIEVAL_WEIGHT) x the share
# of the question's terms the evidence holds - ABSENT_WEIGHT x the share of the question's
# terms no document holds at all. Chosen on three public corpora with hand-written answerable
# and off-topic questions (bench/quality.py): at 0.35 at most 3% of answerable questions were
# refused on any corpus, and at most 7% of off-topic ones passed before the request policy.
ANSWERABLE_THRESHOLD = 0.35
RETRIEVAL_WEIGHT = 0.5
ABSENT_WEIGHT = 0.1
# How much of a conversation the prompt carries, and when a question reads as a follow-up.
HISTORY_TURNS = 4
HISTORY_CHARS = 600
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|but|also|so|then|what about|how about|same|or)\b|\b(?:it|its|it's|this|that|"
    r"these|those|they|them|their|there|one|ones|former|latter|same|instead|too|also|else)\b",
    re.IGNORECASE,
)
_FOLLOW_UP_WORDS = 8


@dataclass(frozen=True)
class Prepared:
    question: str
    messages: list[dict[str, str]]
    refusal: str | None  # not answerable: this text instead of a generation
    retrieved: list[Retrieved]
    confidence: float  # answerability (0 when refused by the request policy)
    citations: list[dict] = field(default_factory=list)
    evidence: Evidence | None = None
    refusal_reason: str | None = None  # low_confidence | secret | personal_data | action | ...
    query: str = ""  # what retrieval searched for (the question, with its context if a follow-up)

    @property
    def contexts(self) -> list[str]:
        return [r.chunk["text"] for r in self.retrieved]

    @property
    def escalated(self) -> bool:
        return self.refusal_reason not in (None, "low_confidence")


def contextual_query(question: str, history: Sequence[dict[str, str]] = ()) -> str:
    """The question, preceded by the user's previous question when this one reads as a
    follow-up (a short question that refers back: "and its maximum?", "what about the other
    one?"), so retrieval finds what the conversation is about."""
    previous = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
    if not previous:
        return question
    if len(question.split()) > _FOLLOW_UP_WORDS * 2 or not _FOLLOW_UP.search(question):
        return question
    return f"{previous[-1].strip()} {question.strip()}"


def _history_messages(history: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The last turns of the conversation, each cut to HISTORY_CHARS (within the context
    limit: passages come first)."""
    turns = [
        {"role": m["role"], "content": m["content"][:HISTORY_CHARS]}
        for m in history
        if m.get("role") in ("user", "assistant") and m.get("content")
    ]
    return turns[-HISTORY_TURNS:]


def answerability(hits: Sequence[Any], evidence: Evidence | None, absent_share: float) -> float:
    """How sure we are that the documents answer the question, in [0, 1]."""
    from assets.retrieval.hybrid import confidence

    coverage = evidence.coverage if evidence is not None else 0.0
    score = RETRIEVAL_WEIGHT * confidence(hits[:TOP_K]) + (1 - RETRIEVAL_WEIGHT) * coverage
    return max(0.0, min(1.0, score - ABSENT_WEIGHT * absent_share))


@dataclass(frozen=True)
class Answering:
    """A project's retrieval index and its answering settings."""

    index: Any  # HybridIndex or GroundingIndex
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    refusal_text: str = DEFAULT_REFUSAL
    escalation_text: str = DEFAULT_ESCALATION
    min_confidence: float | None = None  # None: ANSWERABLE_THRESHOLD
    top_k: int = TOP_K

    @classmethod
    def for_project(cls, index: Any, settings: ProjectSettings, top_k: int = TOP_K) -> Answering:
        return cls(
            index=index,
            system_prompt=settings.system_prompt,
            refusal_text=settings.refusal_text,
            escalation_text=settings.escalation_text,
            min_confidence=settings.retrieval_min_confidence,
            top_k=top_k,
        )

    def threshold(self) -> float:
        if self.min_confidence is not None:
            return self.min_confidence
        return 0.0 if isinstance(self.index, GroundingIndex) else ANSWERABLE_THRESHOLD

    def prepare(self, question: str, history: Sequence[dict[str, str]] = ()) -> Prepared:
        policy = sensitive_request(question)
        if policy is not None:
            return Prepared(
                question,
                [],
                self.escalation_text,
                [],
                0.0,
                refusal_reason=policy.category,
                query=question,
            )
        query = contextual_query(question, history)
        if isinstance(self.index, GroundingIndex):  # lexical only (old deployments)
            hits = self.index.retrieve(query, self.top_k)
            if not hits:
                return Prepared(question, [], self.refusal_text, [], 0.0, query=query)
            messages = grounded_messages(question, hits, self.system_prompt)
            return Prepared(
                question, messages, None, hits, 1.0, [h.citation() for h in hits], query=query
            )
        hits = self.index.retrieve(query, max(CANDIDATES, self.top_k))
        follow_up = query != question
        said = [m["content"] for m in history if m.get("role") == "assistant" and m.get("content")]
        evidence = prefer_reference(
            select_evidence(
                query,
                hits,
                self.index.lexical.idf,
                self.index.embed,
                focus=question if follow_up else "",
                said=said if follow_up else (),
            ),
            self.index.document_hubs(),
        )
        terms = list(dict.fromkeys(tokenize(query)))
        weights = {t: self.index.lexical.idf(t) for t in terms}
        absent = sum(w for t, w in weights.items() if not self.index.lexical.df.get(t))
        absent_share = absent / (sum(weights.values()) or 1.0)
        best = evidence[0] if evidence else None
        score = answerability(hits, best, absent_share)
        if best is None or score < self.threshold():
            return Prepared(
                question,
                [],
                self.refusal_text,
                [],
                score,
                refusal_reason="low_confidence",
                query=query,
            )
        chosen = evidence[: self.top_k]
        shown = [e.hit for e in chosen]
        messages = grounded_messages(question, shown, self.system_prompt)
        if history:
            messages = [messages[0], *_history_messages(history), messages[1]]
        return Prepared(
            question,
            messages,
            None,
            shown,
            score,
            [e.citation() for e in chosen],
            best,
            query=query,
        )


# --- composing the answer ------------------------------------------------------------------

# Figures and names: numbers, identifiers with connectors (gc.auto, --force, R_HOME), quoted
# strings. An answer may state them only where the evidence (or the question) does.
_SPECIFIC = re.compile(
    r"(?<![\w.])-?\d[\d.,:]*\w*|[A-Za-z_][\w]*(?:[._/:-][\w]+)+|--?[A-Za-z][\w-]+|[A-Z][A-Z0-9_]{2,}"
)
_SOURCE_PREFIX = "Source"


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[^\w.%/:-]+", " ", text.lower()).split())


_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*\S{0,3}\s*$", re.MULTILINE)


def supported(answer: str, evidence: Evidence, question: str) -> bool:
    """Whether a generated answer says something the evidence states and nothing it does not:
    every figure and name in it is found in the evidence (or the question), most of its words
    are in the evidence, and it carries at least one word of the evidence that the question
    does not (an answer that only restates the question says nothing)."""
    from assets.dataset.scoring import content_words, groundedness

    quote = evidence.quote()
    folded = _folded(f"{quote}\n{question}")
    for token in _SPECIFIC.findall(answer):
        if _folded(token).strip(".,:") not in folded:
            return False
    if _LIST_LINE.search(answer) or len(answer.split()) > 80:
        return False  # empty list items, or a ramble longer than the evidence
    if groundedness(answer, quote) < 0.7:
        return False
    asked = set(content_words(question))
    return bool((set(content_words(answer)) & set(content_words(quote))) - asked)


def _clean(text: str) -> str:
    text = text.strip()
    # A model trained on chat answers sometimes starts a second turn or repeats the context.
    for marker in ("\nQuestion:", "\nContext:", "\n[1]", "<|im_end|>", "<|im_start|>"):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    return text.strip()


def source_line(evidence: Evidence) -> str:
    chunk = evidence.chunk
    return f"{_SOURCE_PREFIX}: {passage_label(chunk['filename'], chunk['page'])}"


def compose(prepared: Prepared, generated: str, refusal_texts: Sequence[str] = ()) -> str:
    """The answer users get for a prepared question and the model's generation."""
    from assets.evaluation.metrics import fuzzy_match, is_refusal

    if prepared.refusal is not None:
        return prepared.refusal
    evidence = prepared.evidence
    direct = _clean(generated)
    if evidence is None:  # lexical-only deployments: the generation as it is
        return direct
    quote = evidence.quote()
    quoted = f"“{quote}”\n{source_line(evidence)}"
    if not direct or (refusal_texts and is_refusal(direct, *refusal_texts)):
        return quoted
    if not supported(direct, evidence, prepared.question):
        return quoted
    if fuzzy_match(direct, quote) >= 0.8 or _folded(direct) in _folded(quote):
        return quoted  # the model quoted the evidence: once is enough
    return f"{direct}\n\n{quoted}"


@dataclass(frozen=True)
class Answered:
    prepared: Prepared
    text: str
    prompt_tokens: int
    completion_tokens: int
    generated: str = ""  # the model's own text before composition
    kept: bool = False  # whether the answer keeps the model's text (the evidence supports it)


def answer_all(
    runtime: Any,
    adapter: Any,
    prepared: list[Prepared],
    max_new_tokens: int,
    refusal_texts: Sequence[str] = (),
) -> tuple[list[Answered], float]:
    """Answers for prepared questions (refusals as they are, the rest generated in one batch
    through the runtime and composed with their evidence), and the seconds generation took."""
    to_generate = [p for p in prepared if p.refusal is None]
    started = time.perf_counter()
    generations = (
        runtime.generate([p.messages for p in to_generate], adapter, max_new_tokens)
        if to_generate
        else []
    )
    seconds = time.perf_counter() - started
    made = iter(generations)
    out = []
    for p in prepared:
        if p.refusal is not None:
            out.append(Answered(p, p.refusal, 0, 0))
        else:
            g = next(made)
            text = compose(p, g.text, refusal_texts)
            direct = _clean(g.text)
            kept = bool(direct) and text.startswith(direct) and p.evidence is not None
            out.append(Answered(p, text, g.prompt_tokens, g.completion_tokens, g.text, kept))
    return out, seconds
