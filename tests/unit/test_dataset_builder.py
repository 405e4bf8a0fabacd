"""The dataset builder's pure parts: token-sized chunking with overlap, stratified and frozen
splits, scores and duplicate merging, review routing and policy, refusal and escalation
examples, leak detection, model-reply parsing, exports and project settings validation."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from assets.dataset.chunking import Chunk, block_kind, chunk_pages, tokenizer_counter
from assets.dataset.export import export_row, to_jsonl, to_parquet
from assets.dataset.generate import Example, QAPair, build_examples, generate_examples
from assets.dataset.leaks import context_leaks, question_leaks
from assets.dataset.model_generator import parse_pairs
from assets.dataset.refusals import (
    allocate,
    escalation_questions,
    policy_examples,
    refusal_questions,
)
from assets.dataset.review import apply_decision, included
from assets.dataset.scoring import groundedness, merge_duplicates, route, score_example
from assets.dataset.split import assign_splits


def words(text: str) -> int:
    return len(text.split())


def _chunk(text: str, doc: str = "d1", cid: str = "c1", filename: str = "policy.md") -> Chunk:
    return Chunk(cid, doc, filename, 1, 0, len(text), ["Policy"], text)


# --- chunking -----------------------------------------------------------------------------

SECTION = "# Leave\n\n" + "\n\n".join(
    f"Paragraph {i} says that staff member {i} takes leave in month {i} of the year."
    for i in range(12)
)


def test_token_chunks_fit_overlap_and_map_back() -> None:
    chunks = chunk_pages(
        "d",
        "f.md",
        [{"number": 1, "text": SECTION}],
        max_tokens=40,
        overlap_tokens=16,
        count_tokens=words,
    )
    assert len(chunks) > 2
    for c in chunks:
        assert c.tokens == words(c.text) <= 40
        assert SECTION[c.start : c.end] == c.text
        assert c.heading == ["Leave"]
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive chunks of a section overlap"
        assert a.text[-20:] in b.text
    assert set(" ".join(c.text for c in chunks).split()) == set(SECTION.split())


def test_long_sentence_run_is_cut_at_sentence_ends() -> None:
    line = " ".join(f"Sentence number {i} is here." for i in range(30))
    chunks = chunk_pages(
        "d", "f.txt", [{"number": 1, "text": line}], max_tokens=20, count_tokens=words
    )
    assert len(chunks) > 5
    assert all(c.tokens <= 20 and c.text.endswith(".") for c in chunks)


def test_tables_and_lists_are_recognised_and_tables_stand_apart() -> None:
    table = "\n".join(f"office: O{i}; city: C{i}; phone: {i}" for i in range(3))
    items = "- first item\n- second item\n- third item"
    assert block_kind(table) == "table"
    assert block_kind("| a | b |\n| 1 | 2 |") == "table"
    assert block_kind(items) == "list"
    assert block_kind("Just a paragraph.") == "text"
    text = f"# Offices\n\nOur offices are listed below.\n\n{table}\n\n{items}"
    chunks = chunk_pages(
        "d", "f.md", [{"number": 1, "text": text}], max_tokens=500, count_tokens=words
    )
    assert [c.kind for c in chunks] == ["text", "table", "list"]


def test_base_model_tokenizer_counts(base_model_path: Path) -> None:
    count = tokenizer_counter(base_model_path)
    assert 0 < count("Annual leave carries over.") < 12
    chunks = chunk_pages(
        "d",
        "f.md",
        [{"number": 1, "text": SECTION}],
        max_tokens=64,
        overlap_tokens=8,
        count_tokens=count,
    )
    assert all(c.tokens is not None and c.tokens <= 64 for c in chunks)


# --- splits -------------------------------------------------------------------------------


def test_stratified_split_spreads_types_and_is_deterministic() -> None:
    docs = [f"pdf-{i}" for i in range(10)] + [f"csv-{i}" for i in range(10)]
    types = {d: d.split("-")[0] for d in docs}
    split = assign_splits(docs, seed=3, types=types)
    assert split == assign_splits(list(reversed(docs)), seed=3, types=types)
    gold_types = Counter(types[d] for d, s in split.items() if s == "gold")
    assert gold_types == {"pdf": 2, "csv": 2}
    assert Counter(split.values()) == {"train": 13, "gold": 4, "validation": 3}


def test_frozen_assignments_are_kept_and_gold_only_grows() -> None:
    docs = [f"doc-{i}" for i in range(10)]
    first = assign_splits(docs, seed=1)
    more = docs + [f"new-{i}" for i in range(10)]
    second = assign_splits(more, seed=1, frozen=first)
    assert {d: second[d] for d in docs} == first
    gold_before = {d for d, s in first.items() if s == "gold"}
    gold_after = {d for d, s in second.items() if s == "gold"}
    assert gold_before < gold_after


# --- scoring, duplicates, routing, policy --------------------------------------------------


def test_groundedness_tells_supported_from_unsupported_answers() -> None:
    source = "Up to five unused days carry over to the next year, until 31 March."
    assert groundedness("Five unused days carry over until 31 March.", source) == 1.0
    assert groundedness("Ten days are paid out in December.", source) < 0.4


def _example(eid: str, question: str, answer: str, doc: str | None = "d1", **kw) -> Example:
    return Example(eid, doc, "c1", question, answer, kw.pop("kind", "fact"), "g", ["c1"], [], **kw)


def test_scores_and_duplicate_merging() -> None:
    source = "Munich office: Germany. Dublin office: Ireland. Carry over five days."
    rows = [
        _example(
            "a",
            "What is the country for office Munich?",
            "The country for office Munich is Germany.",
        ),
        _example(
            "b",
            "What is the country for office Dublin?",
            "The country for office Dublin is Ireland.",
        ),
        _example("c", "How many days carry over?", "Five days carry over."),
        _example("d", "How many days carry over ?", "Five days carry over."),
        _example("e", "tell me", "Bananas are yellow and grow in tropical places."),
    ]
    scored = [replace(e, scores=score_example(e, source)) for e in rows]
    by_id = {e.id: e for e in scored}
    assert by_id["e"].scores["overall"] < 0.6 < by_id["a"].scores["overall"]
    assert by_id["e"].scores["groundedness"] < 0.3
    merged = {e.id: e for e in merge_duplicates(scored)}
    assert merged["a"].status != "merged" and merged["b"].status != "merged"
    assert {merged["c"].status, merged["d"].status} == {"auto_accepted", "merged"}
    routed = {e.id: e for e in route(list(merged.values()), threshold=0.6, sample_rate=0.0)}
    assert routed["e"].status == "pending" and routed["e"].review_reason == "low_score"
    assert routed["a"].status == "auto_accepted"
    sampled = route(list(merged.values()), threshold=0.0, sample_rate=1.0)
    assert {e.review_reason for e in sampled if e.status == "pending"} == {"sample"}


@pytest.mark.parametrize(
    ("status", "score", "policy", "expected"),
    [
        ("approved", 0.1, "auto", True),
        ("edited", 0.1, "wait", True),
        ("rejected", 1.0, "auto", False),
        ("merged", 1.0, "auto", False),
        ("pending", 0.9, "auto", True),
        ("pending", 0.3, "auto", False),
        ("pending", 0.9, "wait", False),
        ("auto_accepted", 0.9, "wait", True),
    ],
)
def test_review_policy(status: str, score: float, policy: str, expected: bool) -> None:
    assert included({"status": status, "scores": {"overall": score}}, policy, 0.6) is expected


def test_an_edit_rewrites_question_and_answer_in_the_messages() -> None:
    [example] = generate_examples([_chunk("Q: Where is the canteen?\nA: On the ground floor.")])
    edited = apply_decision(
        example.to_dict(),
        {"decision": "edited", "question": "Where do we eat?", "answer": "Floor 0."},
    )
    assert edited["status"] == "edited"
    assert edited["messages"][1]["content"].endswith("Question: Where do we eat?")
    assert edited["messages"][2]["content"] == "Floor 0."


# --- refusal and escalation ---------------------------------------------------------------


def test_refusal_questions_skip_topics_the_corpus_covers() -> None:
    corpus = [_chunk("Staff may bring pets to the office on Fridays. Parking is free.")]
    questions = refusal_questions(corpus, seed=0)
    assert "Can I bring my dog to the office?" not in questions
    assert "How many parking spaces does each office have?" not in questions
    assert "What is the capital of Australia?" in questions
    assert len(escalation_questions(corpus, seed=0)) == 16


def test_policy_examples_answer_with_the_configured_text_and_cite_nothing() -> None:
    pool = [
        _chunk("Text one about leave.", "d1", "c1"),
        _chunk("Text two about travel.", "d2", "c2"),
    ]
    made = policy_examples(
        ["What is the capital of Australia?"], "refusal", "Not here.", pool, "train"
    )
    [example] = made
    assert example.citations == [] and example.document_id is None
    assert example.messages[-1] == {"role": "assistant", "content": "Not here."}
    assert set(example.context) <= {"c1", "c2"}
    assert allocate(5, {"train": 8, "validation": 2}) == {"train": 4, "validation": 1}


def test_distractors_come_from_the_given_pool_only() -> None:
    chunks = [_chunk("Q: A?\nA: B.", "d1", "c1"), _chunk("Q: C?\nA: D.", "d2", "c2")]
    pool = [chunks[0], _chunk("Same split text.", "d3", "c3")]
    made = build_examples(chunks[:1], [[QAPair("A?", "B.", "faq")]], "g", pool=pool, distractors=3)
    assert set(made[0].context) == {"c1", "c3"}


# --- leaks ----------------------------------------------------------------------------------


def test_question_and_context_leaks() -> None:
    gold = [{"id": "g1", "question": "How many days carry over?", "answer": "Five days."}]
    train = [
        {"id": "t1", "question": "How many days carry over ?", "answer": "Something else."},
        {"id": "t2", "question": "How many days do carry over?", "answer": "Five days."},
        {"id": "t3", "question": "What is the country for office Munich?", "answer": "Germany."},
        {"id": "t4", "question": "How many days do carry over?", "answer": "Ten, in May."},
    ]
    leaks = {leak.train for leak in question_leaks(gold, train)}
    assert leaks == {"t1", "t2"}
    passage = (
        "Up to five unused days of annual leave carry over to the next year and expire in March."
    )
    found = context_leaks(
        {"g": passage}, {"t": passage + " Ask HR.", "u": "Completely unrelated text here."}
    )
    assert [leak.train for leak in found] == ["t"]


# --- model replies, exports -----------------------------------------------------------------


def test_parse_pairs_keeps_answered_questions_once() -> None:
    reply = "Q: When?\nA: At 8.\nQ: When?\nA: Again.\nQ: Unanswered?\nQ2: Where?\nA2: Here.\nnoise"
    assert parse_pairs(reply) == [
        QAPair("When?", "At 8.", "generated"),
        QAPair("Where?", "Here.", "generated"),
    ]


def test_exports_load_with_datasets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    from datasets import load_dataset

    made = generate_examples([_chunk("Q: Where is the canteen?\nA: On the ground floor.")])
    refusal = policy_examples(["Who painted the Mona Lisa?"], "refusal", "No.", [], "train")
    rows = [
        export_row({**e.to_dict(), "scores": score_example(e, "On the ground floor.")})
        for e in made + refusal
    ]
    (tmp_path / "train.jsonl").write_bytes(to_jsonl(rows))
    (tmp_path / "train.parquet").write_bytes(to_parquet(rows))
    for kind in ("json", "parquet"):
        ext = "jsonl" if kind == "json" else "parquet"
        ds = load_dataset(kind, data_files=str(tmp_path / f"train.{ext}"), split="train")
        assert ds.num_rows == 2
        assert ds[0]["messages"][-1]["role"] == "assistant"
        assert ds[1]["scores"]["groundedness"] is None


# --- project settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"refusal_share": 0.7},
        {"generators": ["magic"]},
        {"generators": []},
        {"review_policy": "sometimes"},
        {"chunk_tokens": 8},
        {"chunk_tokens": 128, "chunk_overlap_tokens": 100},
        {"auto_accept_threshold": 1.5},
        {"generator_model": {"provider": "openai", "model": "x"}},
        {"generator_model": {"provider": "ollama"}},
        {"generator_model": {"provider": "local", "base_url": "ftp://x"}},
        {
            "generator_model": {
                "provider": "openai",
                "model": "m",
                "base_url": "http://h",
                "api_key_env": "A-B",
            }
        },
    ],
)
def test_invalid_dataset_settings_are_refused(settings: dict) -> None:
    from api.errors import BadRequest
    from api.services.projects import validate_settings

    with pytest.raises(BadRequest) as err:
        validate_settings(settings)
    assert err.value.code == "invalid_settings"
    assert err.value.details["setting"] in settings
    assert err.value.message.startswith(f"settings.{err.value.details['setting']}")


def test_valid_dataset_settings_are_kept() -> None:
    from api.services.projects import validate_settings

    settings = {
        "escalation_text": "Ask HR.",
        "refusal_share": 0.2,
        "generators": ["deterministic", "model"],
        "generator_model": {"provider": "ollama", "model": "llama3.2", "max_chunks": 20},
        "review_policy": "wait",
        "auto_accept_threshold": 0.7,
    }
    assert validate_settings(settings) == settings
