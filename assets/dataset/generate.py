"""Instruction generation behind one interface (`PairGenerator`: chunks in, question/answer
pairs per chunk out), and the deterministic generator: pairs read straight out of a chunk (FAQ
entries, definitions, "Key: value" facts, table rows, headed sections), so every project gets a
grounded dataset without a capable generator model. The model-based generator lives in
`model_generator.py`."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from assets.dataset.chunking import Chunk
from assets.dataset.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    ContextPassage,
    build_messages,
    passage_label,
)

GENERATOR = "deterministic-v2"
_FAQ_Q = re.compile(r"^\W*(?:Q|Question)\s*[:.]\s*(.+?\?)\W*$", re.I)
_FAQ_A = re.compile(r"^\W*(?:A|Answer)\s*[:.]\s*(.+)$", re.I)
_KEY_VALUE = re.compile(r"^[-*\s]*([A-Z][A-Za-z0-9 ()/&'-]{2,60}?)\s*:\s+(.{2,300})$")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[A-Z][.)])\s+")
_DEFINITION = re.compile(r"^[a-z][a-z-]*\s+[a-z]")
_PREPOSITIONS = frozenset(["to", "for", "of", "by", "with", "in", "on", "at", "from"])
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Emphasis markers only: underscores inside words (snake_case, e-mail addresses) are content.
_MD_MARKUP = re.compile(r"\*+|`+|(?<!\w)_+|_+(?!\w)")


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    kind: str


@dataclass(frozen=True)
class Example:
    id: str
    # None for refusal and escalation examples, which no document supports.
    document_id: str | None
    chunk_id: str
    question: str
    answer: str
    kind: str
    generator: str
    citations: list[str]
    messages: list[dict[str, str]]
    split: str = "train"
    scores: dict[str, Any] = field(default_factory=dict)
    status: str = "auto_accepted"
    review_reason: str | None = None
    duplicate_of: str | None = None
    # Chunks shown in the user turn (the cited one among distractors): the leak check reads them.
    context: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class PairGenerator(Protocol):
    """What every instruction generator does: for each chunk, the pairs grounded in it."""

    name: str

    def pairs(self, chunks: Sequence[Chunk]) -> list[list[QAPair]]: ...


class DeterministicGenerator:
    """Rules only: no model, same output for the same chunk."""

    name = GENERATOR

    def pairs(self, chunks: Sequence[Chunk]) -> list[list[QAPair]]:
        return [qa_pairs(c) for c in chunks]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", _MD_MARKUP.sub("", text)).strip()


def _sentences(text: str) -> list[str]:
    body = " ".join(
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    return [s.strip() for s in _SENTENCE.split(_clean(body)) if len(s.split()) >= 4]


def _faq_pairs(lines: list[str]) -> list[QAPair]:
    pairs = []
    for i, line in enumerate(lines):
        q = _FAQ_Q.match(_clean(line))
        if not q:
            continue
        for follow in lines[i + 1 : i + 3]:
            a = _FAQ_A.match(_clean(follow))
            if a:
                pairs.append(QAPair(q.group(1), a.group(1).strip(), "faq"))
                break
    return pairs


def _row_pairs(line: str) -> list[QAPair]:
    """Table rows rendered as `col: value; col: value` become one fact per column."""
    parts = line.split("; ")
    fields = [f.split(":", 1) for f in parts if ":" in f]
    if len(fields) < 2 or len(fields) != len(parts):
        return []
    (first_key, first_value), rest = fields[0], fields[1:]
    subject = f"{first_key.strip().replace('_', ' ')} {first_value.strip()}"
    pairs = []
    for key, value in rest:
        key = key.strip().replace("_", " ")
        value = value.strip()
        if value:
            pairs.append(
                QAPair(
                    f"What is the {key} for {subject}?",
                    f"The {key} for {subject} is {value}.",
                    "table",
                )
            )
    return pairs


def _key_value_pair(line: str, document: str) -> QAPair | None:
    match = _KEY_VALUE.match(_clean(line))
    if not match or _FAQ_Q.match(line) or _FAQ_A.match(line):
        return None
    key, value = match.group(1).strip(), match.group(2).strip()
    if len(key.split()) > _KEY_MAX_WORDS:
        return None  # a sentence with a colon in it, not a "Key: value" line
    if ";" in value and value.count(":") >= 2:
        return None
    value = value.rstrip(".")
    last_word = key.split()[-1].lower()
    if last_word in _PREPOSITIONS:
        # "Applies to: all staff" reads as a sentence once the colon goes.
        return QAPair(f"What does the {document} state under {key!r}?", f"{key} {value}.", "fact")
    phrase = _lower_first(key)
    if _DEFINITION.match(value) and len(key.split()) <= 3:
        # "MFA: multi-factor authentication, ..." is a definition, not an attribute.
        return QAPair(f"What does {phrase} mean?", f"{key} means {value}.", "definition")
    verb = "are" if phrase.endswith("s") and not phrase.endswith("ss") else "is"
    # Keys such as "Policy owner" recur across documents: name the document in the question.
    return QAPair(
        f"What {verb} the {phrase} in the {document}?", f"The {phrase} {verb} {value}.", "fact"
    )


def _lower_first(text: str) -> str:
    """Lowercase the first letter unless the word is an acronym (MFA, IT)."""
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def _topic(heading: str) -> str:
    """`4. Booking travel` -> `booking travel`."""
    return _lower_first(_NUMBERING.sub("", heading).strip())


def document_name(filename: str) -> str:
    """`expenses-and-travel-policy.docx` -> `expenses and travel policy`."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return re.sub(r"[-_\s]+", " ", stem).strip()


# A heading that names a thing rather than a topic: an option (-f, --force), a setting or
# identifier (gc.auto, R_HOME, autoPackLimit), a call (intmax (type)).
_TERM_HEADING = re.compile(
    r"^-{1,2}\w|^[A-Za-z_][\w-]*\s?\(|^[A-Za-z_]\w*(?:[._/@:-]\w+)+$|^[a-z]+[A-Z]\w*$|"
    r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$"
)
_KEY_MAX_WORDS = 5
_TOC_LEADER = re.compile(r"(?:\.\s?){3,}")
_FACT_WORDS = re.compile(
    r"\b(?P<word>defaults?|default value|maximum|minimum|at most|at least|limit|range|"
    r"must|only|requires?|returns?)\b",
    re.IGNORECASE,
)
_FIGURE = re.compile(r"\d")
MAX_FACTS_PER_ENTRY = 2


def _subject(chunk: Chunk) -> str:
    return _MD_MARKUP.sub("", chunk.heading[-1]).strip(" :;,.") if chunk.heading else ""


def _fact_question(subject: str, sentence: str) -> str | None:
    """A question a sentence of an entry answers, from what kind of fact it states."""
    match = _FACT_WORDS.search(sentence)
    word = match.group("word").lower() if match else ""
    if word.startswith("default"):
        return f"What is the default for {subject}?"
    if word in ("maximum", "minimum", "limit", "range"):
        return f"What is the {word} for {subject}?"
    if word in ("at most", "at least"):
        return f"How many or how much is allowed for {subject}?"
    if word.startswith("return"):
        return f"What does {subject} return?"
    if word in ("must", "only") or word.startswith("require"):
        return f"What does {subject} require?"
    if _FIGURE.search(sentence):
        return f"What figure does the documentation give for {subject}?"
    return None


def entry_pairs(chunk: Chunk) -> list[QAPair]:
    """Reference entries (a setting, an option, a function under its own heading): what it is,
    answered with the entry's first sentence, and the facts it states (defaults, limits,
    figures, what it returns or requires), each answered with the sentence that states it,
    word for word, so the model learns to quote rather than paraphrase."""
    subject = _subject(chunk)
    name = _NUMBERING.sub("", subject)
    if not name or len(name) > 80 or _TOC_LEADER.search(name) or not _TERM_HEADING.search(name):
        return []
    sentences = _sentences(chunk.text)
    if not sentences:
        return []
    opener = "What does the {} option do?" if subject.startswith("-") else "What is {}?"
    pairs = [QAPair(opener.format(subject), f"{subject}: {sentences[0]}", "entry")]
    asked = {pairs[0].question}
    for sentence in sentences[1:]:
        question = _fact_question(subject, sentence)
        if question and question not in asked and len(pairs) <= MAX_FACTS_PER_ENTRY:
            asked.add(question)
            pairs.append(QAPair(question, f"{subject}: {sentence}", "fact"))
    return pairs


def qa_pairs(chunk: Chunk) -> list[QAPair]:
    """Every question/answer pair this generator can read out of one chunk."""
    lines = [line for line in chunk.text.splitlines() if line.strip()]
    pairs = _faq_pairs(lines)
    faq_lines = {
        i
        for i, line in enumerate(lines)
        if _FAQ_Q.match(_clean(line)) or _FAQ_A.match(_clean(line))
    }
    for i, line in enumerate(lines):
        if i in faq_lines or line.lstrip().startswith("#"):
            continue
        rows = _row_pairs(_clean(line))
        if rows:
            pairs.extend(rows[:3])
            continue
        kv = _key_value_pair(line, document_name(chunk.filename))
        if kv:
            pairs.append(kv)
    if not pairs:
        pairs = entry_pairs(chunk)
    if not pairs and chunk.heading:
        sentences = _sentences(chunk.text)
        if sentences:
            answer = " ".join(sentences[:2])
            question = f"What does the {document_name(chunk.filename)} say about {_topic(chunk.heading[-1])}?"
            pairs.append(QAPair(question, answer, "section"))
    return pairs


def _example_id(chunk_id: str, question: str) -> str:
    """Stable across runs (review decisions are keyed by it): the chunk and the question."""
    return hashlib.sha256(f"{chunk_id}:{question}".encode()).hexdigest()[:20]


def first_of_each_id(examples: Sequence[Example]) -> list[Example]:
    """One example per id, the first one given: two generators may read the same question out
    of one chunk, and the dataset stores each id once."""
    seen: set[str] = set()
    out = []
    for example in examples:
        if example.id not in seen:
            seen.add(example.id)
            out.append(example)
    return out


def context_messages(
    question: str,
    chunk: Chunk | None,
    pool: Sequence[Chunk],
    rng: random.Random,
    distractors: int,
    system_prompt: str,
    answer: str,
) -> tuple[list[dict[str, str]], list[str]]:
    """Messages whose user turn holds `chunk` (if any) among `distractors` chunks of other
    documents drawn from `pool`, shuffled; and the ids of the chunks shown."""
    others = [c for c in pool if chunk is None or c.document_id != chunk.document_id]
    context = ([chunk] if chunk is not None else []) + (
        rng.sample(others, min(distractors, len(others))) if others else []
    )
    rng.shuffle(context)
    passages = [ContextPassage(passage_label(c.filename, c.page), c.text) for c in context]
    return build_messages(question, passages, system_prompt, answer), [c.id for c in context]


def build_examples(
    chunks: Sequence[Chunk],
    pairs: Sequence[Sequence[QAPair]],
    generator: str,
    pool: Sequence[Chunk] | None = None,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    distractors: int = 1,
    seed: int = 0,
    split: str = "train",
) -> list[Example]:
    """Examples in chat format from each chunk's pairs. Distractors come from `pool` (by
    default the chunks themselves): the caller passes the chunks of the same split only, so
    no passage of one split is shown in another."""
    rng = random.Random(seed)
    candidates = list(chunks if pool is None else pool)
    examples: list[Example] = []
    seen: set[str] = set()
    for chunk, chunk_pairs in zip(chunks, pairs, strict=True):
        for pair in chunk_pairs:
            example_id = _example_id(chunk.id, pair.question)
            if example_id in seen:
                # The same question read twice out of one chunk (two lines with the same key,
                # a generator repeating itself) is one example: the first answer stands.
                continue
            seen.add(example_id)
            messages, context = context_messages(
                pair.question, chunk, candidates, rng, distractors, system_prompt, pair.answer
            )
            examples.append(
                Example(
                    id=example_id,
                    document_id=chunk.document_id,
                    chunk_id=chunk.id,
                    question=pair.question,
                    answer=pair.answer,
                    kind=pair.kind,
                    generator=generator,
                    citations=[chunk.id],
                    messages=messages,
                    split=split,
                    context=context,
                )
            )
    return examples


def generate_examples(
    chunks: list[Chunk],
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    distractors: int = 1,
    seed: int = 0,
) -> list[Example]:
    """Deterministic examples in chat format. Each user turn holds the supporting chunk among
    `distractors` chunks of other documents (shuffled), so the model learns to pick the right
    passage."""
    pairs = DeterministicGenerator().pairs(chunks)
    return build_examples(chunks, pairs, GENERATOR, chunks, system_prompt, distractors, seed)
