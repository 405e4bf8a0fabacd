from __future__ import annotations

import pytest

from assets.dataset.prompt import DEFAULT_SYSTEM_PROMPT
from assets.retrieval.grounding import GroundingIndex, Retrieved, grounded_messages
from assets.retrieval.lexical import STOPWORDS, BM25Index, Hit, tokenize

TEXTS = [
    "Employees get 25 days of annual leave per year, plus public holidays.",
    "The guest Wi-Fi network is called Acme-Guest and its password changes every Monday.",
    "Expense claims over 10 GBP need a receipt; rail travel is second class.",
    "Lock your screen when you leave your desk. Passwords are rotated every ninety days.",
    "The staff canteen at Cambridge HQ is open from 08:00 to 14:30, Monday to Friday.",
]

CHUNKS = [
    {
        "id": f"chunk-{i}",
        "document_id": f"doc-{i % 2}",
        "filename": f"file-{i}.md",
        "page": i + 1,
        "start": 10 * i,
        "end": 10 * i + len(text),
        "heading": heading,
        "text": text,
    }
    for i, (text, heading) in enumerate(
        zip(
            TEXTS,
            [["Leave"], ["Facilities", "Wi-Fi"], ["Expenses"], ["IT security"], ["Canteen"]],
            strict=True,
        )
    )
]


# --- tokenize ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # plain words: lowercased and stemmed, stopwords gone
        ("The Annual LEAVE policy", ["annual", "leav", "polici"]),
        ("Defaults to 10", ["default", "10"]),
        ("what is the of and", []),
        ("", []),
        ("!!! ???", []),
        # identifiers whole, then their parts (at connectors and camelCase)
        ("Wi-Fi e-mail", ["wi-fi", "wi", "fi", "e-mail", "mail"]),
        ("gc.autoPackLimit", ["gc.autopacklimit", "gc", "auto", "pack", "limit"]),
        ("stash@{0}", ["stash@{0}", "stash"]),
        ("version 3.5, not 3.", ["version", "3.5", "not", "3"]),
        # options are terms, even one letter long; a possessive is the word itself
        ("git tag -a and --no-verify", ["git", "tag", "-a", "--no-verify", "no", "verifi"]),
        ("employee's badge", ["employe", "badg"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_question_and_document_forms_meet() -> None:
    """Stemming and identifier parts make a question's words match the documentation's."""
    question = set(tokenize("Which option prunes loose objects by default?"))
    document = set(tokenize("--prune=<date>: Prune loose objects older than date (defaults)"))
    assert {"prune", "loos", "object", "default"} <= question & document
    assert "auto" in set(tokenize("the auto pack limit")) & set(tokenize("gc.autoPackLimit"))


def test_stopwords_are_lowercase_and_removed() -> None:
    assert all(w == w.lower() for w in STOPWORDS)
    assert tokenize(" ".join(sorted(STOPWORDS)).upper()) == []


# --- BM25 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("How many days of annual leave do I get?", 0),
        ("What is the Wi-Fi password?", 1),
        ("Do I need a receipt for an expense claim?", 2),
        ("How often are passwords rotated?", 3),
        ("When is the canteen open?", 4),
    ],
)
def test_relevant_text_ranks_first(query: str, best: int) -> None:
    hits = BM25Index(TEXTS).search(query, k=5)
    assert hits
    assert hits[0].index == best
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize(
    "query",
    ["what is the", "Is it? Of and the!", "zyxxy quux", "", "   ", "?!"],
)
def test_stopword_or_unknown_queries_have_no_hits(query: str) -> None:
    assert BM25Index(TEXTS).search(query) == []


@pytest.mark.parametrize("k", [0, 1, 2, 10])
def test_k_limits_hits(k: int) -> None:
    hits = BM25Index(TEXTS).search("leave monday passwords canteen receipt", k=k)
    assert len(hits) == min(k, 5)


def test_rarer_term_and_higher_frequency_score_higher() -> None:
    index = BM25Index(["apple banana", "apple cherry", "apple banana banana", "date"])
    # "banana" is rarer than "apple", so matching it outweighs matching "apple".
    assert index.search("banana", k=1)[0].index == 2
    scores = {h.index: h.score for h in index.search("apple banana", k=4)}
    assert scores[2] > scores[0] > scores[1]
    assert 3 not in scores


def test_ties_keep_index_order() -> None:
    index = BM25Index(["same words", "same words", "same words"])
    assert [h.index for h in index.search("words", k=3)] == [0, 1, 2]


def test_empty_index() -> None:
    assert BM25Index([]).search("anything") == []


def test_repeated_query_terms_count_once() -> None:
    index = BM25Index(TEXTS)
    assert index.search("canteen canteen canteen") == index.search("canteen")


# --- grounding --------------------------------------------------------------


def test_retrieve_returns_the_relevant_chunk_with_its_citation() -> None:
    index = GroundingIndex(CHUNKS)
    retrieved = index.retrieve("When does the staff canteen open?", k=3)
    assert retrieved
    assert retrieved[0].chunk is CHUNKS[4]
    citation = retrieved[0].citation()
    assert citation == {
        "document_id": "doc-0",
        "filename": "file-4.md",
        "page": 5,
        "start": 40,
        "end": 40 + len(TEXTS[4]),
        "chunk_id": "chunk-4",
        "score": round(retrieved[0].score, 4),
    }
    assert citation["score"] > 0


def test_headings_are_searchable() -> None:
    # "security" only appears in the heading of chunk 3.
    retrieved = GroundingIndex(CHUNKS).retrieve("security")
    assert [r.chunk["id"] for r in retrieved] == ["chunk-3"]


def test_chunks_without_heading_key() -> None:
    chunks = [{k: v for k, v in c.items() if k != "heading"} for c in CHUNKS]
    assert GroundingIndex(chunks).retrieve("canteen")[0].chunk["id"] == "chunk-4"


@pytest.mark.parametrize("question", ["What is the?", "zyxxy", ""])
def test_no_hits_for_stopword_or_unknown_questions(question: str) -> None:
    assert GroundingIndex(CHUNKS).retrieve(question) == []


def test_min_score_filters_weak_hits() -> None:
    index = GroundingIndex(CHUNKS)
    question = "canteen Monday"
    everything = index.retrieve(question, k=5)
    assert len(everything) >= 2
    threshold = (everything[0].score + everything[-1].score) / 2
    strong = index.retrieve(question, k=5, min_score=threshold)
    assert strong
    assert len(strong) < len(everything)
    assert all(r.score > threshold for r in strong)
    assert [r.chunk["id"] for r in strong] == [r.chunk["id"] for r in everything][: len(strong)]
    assert index.retrieve(question, k=5, min_score=everything[0].score) == []


def test_citation_score_is_rounded() -> None:
    r = Retrieved(CHUNKS[0], 1.234567891)
    assert r.citation()["score"] == 1.2346


def test_grounded_messages_hold_passages_in_order_and_the_question() -> None:
    retrieved = GroundingIndex(CHUNKS).retrieve("canteen Monday password", k=3)
    messages = grounded_messages("  When is the canteen open?  ", retrieved)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_SYSTEM_PROMPT
    user = messages[1]["content"]
    assert user.startswith("Context:\n")
    assert user.endswith("\n\nQuestion: When is the canteen open?")
    positions = []
    for n, r in enumerate(retrieved, 1):
        label = f"[{n}] ({r.chunk['filename']}, page {r.chunk['page']})\n{r.chunk['text']}"
        assert label in user
        positions.append(user.index(label))
    assert positions == sorted(positions)


def test_grounded_messages_custom_system_prompt_and_no_context() -> None:
    messages = grounded_messages("Q?", [], system_prompt="Only facts.")
    assert messages[0] == {"role": "system", "content": "Only facts."}
    assert messages[1]["content"] == "Context:\n\n\nQuestion: Q?"


def test_hit_is_a_value() -> None:
    assert Hit(1, 0.5) == Hit(1, 0.5)
