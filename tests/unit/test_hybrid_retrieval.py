"""The hybrid index (assets.retrieval.hybrid) with the real MiniLM: fusion, confidence,
incremental builds, and a save/load round trip through real object stores."""

from __future__ import annotations

import io
import re
import uuid

import numpy as np
import pytest

from assets.dataset.chunking import chunk_pages
from assets.normalization.extract import extract
from assets.normalization.normalize import normalize_text, remove_repeated_lines
from assets.normalization.sniff import sniff_type
from assets.retrieval.grounding import GroundingIndex, Retrieved, grounded_messages
from assets.retrieval.hybrid import (
    CONFIDENCE_THRESHOLD,
    LATEST_KEY,
    MODEL_NAME,
    HybridIndex,
    HybridRetrieved,
    LexicalIndex,
    build_index,
    chunk_hashes,
    confidence,
    embed_texts,
    index_version,
    is_confident,
    latest_index_key,
    load_index,
    read_index,
    save_index,
    set_latest,
)
from assets.retrieval.lexical import BM25Index
from resources.object_store import LocalObjectStore, ObjectStoreResource, ProjectStore
from tests.conftest import sample_files

TEXTS = [
    "Employees get 25 days of annual leave per year, plus public holidays.",
    "The guest Wi-Fi network is called Acme-Guest and its password changes every Monday.",
    "Expense claims over 10 GBP need a receipt; rail travel is second class.",
    "Lock your screen when you leave your desk. Passwords are rotated every ninety days.",
    "The staff canteen at Cambridge HQ is open from 08:00 to 14:30, Monday to Friday.",
    "Spare part 88-1203 is the left drive wheel motor of the Carrier robot.",
    "Spare part 88-1204 is the right drive wheel motor of the Carrier robot.",
]
HEADINGS = [["Leave"], ["Facilities", "Wi-Fi"], ["Expenses"], ["IT security"], ["Canteen"], [], []]


def make_chunks(texts: list[str], headings: list[list[str]] | None = None) -> list[dict]:
    headings = headings or [[] for _ in texts]
    return [
        {
            "id": f"chunk-{i}",
            "document_id": f"doc-{i}",
            "filename": f"file-{i}.md",
            "page": 1 + i % 3,
            "start": 10 * i,
            "end": 10 * i + len(text),
            "heading": heading,
            "text": text,
        }
        for i, (text, heading) in enumerate(zip(texts, headings, strict=True))
    ]


CHUNKS = make_chunks(TEXTS, HEADINGS)


class CountingEmbed:
    """MiniLM, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts.extend(texts)
        return embed_texts(texts)


@pytest.fixture(scope="module")
def index() -> HybridIndex:
    return build_index(CHUNKS)


def _approx_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def demo_chunks(names: list[str] | None = None) -> list[dict]:
    """The demo corpus (sample_data/acme-handbook) extracted and chunked as onboarding does,
    with word pieces standing in for the base model's tokens."""
    chunks: list[dict] = []
    for path in sample_files(names):
        data = path.read_bytes()
        extraction = extract(data, sniff_type(data, path.name))
        cleaned, _ = remove_repeated_lines([normalize_text(p.text) for p in extraction.pages])
        pages = [
            {"number": p.number, "text": t} for p, t in zip(extraction.pages, cleaned, strict=True)
        ]
        chunks.extend(
            c.to_dict()
            for c in chunk_pages(
                path.stem,
                path.name,
                pages,
                max_tokens=256,
                overlap_tokens=32,
                count_tokens=_approx_tokens,
            )
        )
    return chunks


@pytest.fixture(scope="module")
def demo_index() -> HybridIndex:
    return build_index(demo_chunks())


# --- the lexical half -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "How many days of annual leave do I get?",
        "What is the Wi-Fi password?",
        "canteen canteen Monday",
        "spare part 88-1204",
        "zyxxy quux",
        "what is the",
        "",
    ],
)
def test_bm25s_scores_equal_our_bm25(query: str) -> None:
    texts = [f"{' '.join(c['heading'])}\n{c['text']}" for c in CHUNKS]
    ours = {h.index: h.score for h in BM25Index(texts).search(query, k=len(texts))}
    scores = LexicalIndex(texts).scores(query)
    expected = np.array([ours.get(i, 0.0) for i in range(len(texts))])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_coverage_is_the_share_of_the_ceiling() -> None:
    lexical = LexicalIndex(TEXTS)
    coverage = lexical.coverage("spare part 88-1204")
    assert coverage.shape == (len(TEXTS),)
    assert np.all((coverage >= 0) & (coverage < 1))
    assert coverage.argmax() == 6
    # a question term no chunk holds lowers coverage: it is part of the question not found
    assert lexical.coverage("spare part 88-1204 warranty")[6] < coverage[6]
    assert not lexical.coverage("what is the").any()


def test_lexical_index_of_nothing() -> None:
    assert LexicalIndex([]).scores("anything").shape == (0,)
    assert not LexicalIndex(["the of and", ""]).scores("anything").any()


# --- fusion -------------------------------------------------------------------------------------


def test_paraphrase_is_found_by_the_dense_part(index: HybridIndex) -> None:
    question = "Where can I grab lunch in the office?"
    # not one content word in common with any chunk: BM25 finds nothing
    assert GroundingIndex(CHUNKS).retrieve(question) == []
    hits = index.retrieve(question, k=3)
    assert hits[0].chunk["id"] == "chunk-4"
    assert hits[0].lexical == 0.0 and hits[0].coverage == 0.0
    assert hits[0].dense > max(h.dense for h in hits[1:])


def test_exact_keyword_is_found_by_the_lexical_part(index: HybridIndex) -> None:
    question = "What is part 88-1204?"
    scores = index.scores(question)
    # MiniLM alone cannot tell the two part numbers apart and prefers the wrong one
    assert int(np.argmax(scores.dense)) == 5
    hits = index.retrieve(question, k=2)
    assert [h.chunk["id"] for h in hits] == ["chunk-6", "chunk-5"]
    assert hits[0].coverage > hits[1].coverage
    assert hits[0].lexical > hits[1].lexical > 0


def test_hits_are_retrieved_with_scores_and_provenance(index: HybridIndex) -> None:
    hits = index.retrieve("When does the staff canteen open?", k=3)
    assert len(hits) == 3
    assert all(isinstance(h, Retrieved) and isinstance(h, HybridRetrieved) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    best = hits[0]
    assert best.chunk is CHUNKS[4]
    assert best.score == pytest.approx(0.6 * best.coverage + 0.4 * best.dense, abs=1e-5)
    assert best.citation() == {
        "document_id": "doc-4",
        "filename": "file-4.md",
        "page": 2,
        "start": 40,
        "end": 40 + len(TEXTS[4]),
        "chunk_id": "chunk-4",
        "score": round(best.score, 4),
        "lexical": round(best.lexical, 4),
        "dense": round(best.dense, 4),
    }
    assert best.citation()["lexical"] > 0 and best.citation()["dense"] > 0
    messages = grounded_messages("When does the staff canteen open?", hits)
    assert TEXTS[4] in messages[1]["content"]


def test_headings_are_indexed(index: HybridIndex) -> None:
    # "security" is only in chunk 3's heading
    assert index.retrieve("security", k=1)[0].chunk["id"] == "chunk-3"


@pytest.mark.parametrize("k", [0, 1, 3, 50])
def test_k_limits_hits(index: HybridIndex, k: int) -> None:
    assert len(index.retrieve("canteen", k=k)) == min(k, len(CHUNKS))


def test_retrieve_many_equals_retrieve(index: HybridIndex) -> None:
    questions = ["What is the Wi-Fi password?", "Do I need a receipt?"]
    batched = index.retrieve_many(questions, k=2)
    for question, hits in zip(questions, batched, strict=True):
        single = index.retrieve(question, k=2)
        assert [h.chunk["id"] for h in hits] == [h.chunk["id"] for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)
    assert index.retrieve_many([], k=3) == []


def test_empty_index() -> None:
    empty = build_index([])
    assert len(empty) == 0
    assert empty.embeddings.shape == (0, 384)
    assert empty.retrieve("anything") == []
    assert not empty.is_confident("anything")


def test_embeddings_must_match_the_chunks() -> None:
    with pytest.raises(ValueError, match="one row per chunk"):
        HybridIndex(CHUNKS, np.zeros((2, 384), dtype=np.float32))
    with pytest.raises(ValueError, match="alpha"):
        HybridIndex(CHUNKS[:1], np.zeros((1, 384), dtype=np.float32), alpha=1.5)


# --- confidence ---------------------------------------------------------------------------------

ON_TOPIC = [
    "How many days of annual leave do employees get?",
    "What is the deadline for submitting expense claims?",
    "Who should I contact if my laptop is stolen?",
    "What is the expenses team e-mail in the expenses and travel policy?",
    "What is the address for office London?",
    "How much holiday do full-time staff get each year?",
    "Can I take my pet to work?",
]
OFF_TOPIC = [
    "How do I treat a sprained ankle?",
    "Which stocks should I buy this year?",
    "What is the capital of France?",
    "Who won the football World Cup in 2018?",
    "How do I bake sourdough bread?",
]


@pytest.mark.parametrize("question", ON_TOPIC)
def test_answerable_questions_are_confident(demo_index: HybridIndex, question: str) -> None:
    hits = demo_index.retrieve(question, k=3)
    assert is_confident(hits)
    assert demo_index.is_confident(question)
    assert CONFIDENCE_THRESHOLD <= confidence(hits) <= 1.0


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_are_not(demo_index: HybridIndex, question: str) -> None:
    hits = demo_index.retrieve(question, k=3)
    assert len(hits) == 3  # retrieval always answers; confidence says not to use it
    assert not is_confident(hits)
    assert not demo_index.is_confident(question)
    assert 0.0 <= confidence(hits) < CONFIDENCE_THRESHOLD


def test_answerable_outscore_off_topic(demo_index: HybridIndex) -> None:
    on = [demo_index.confidence(q) for q in ON_TOPIC]
    off = [demo_index.confidence(q) for q in OFF_TOPIC]
    assert min(on) > max(off)


def test_confidence_of_no_hits_and_custom_threshold(index: HybridIndex) -> None:
    assert confidence([]) == 0.0
    assert not is_confident([])
    hits = index.retrieve("canteen opening hours", k=3)
    value = confidence(hits)
    assert 0.0 < value <= 1.0
    assert is_confident(hits, threshold=value)
    assert not is_confident(hits, threshold=value + 1e-6)
    assert index.confidence(hits) == value


# --- incremental builds -----------------------------------------------------------------------


def test_second_build_embeds_only_the_new_chunk() -> None:
    first_embed = CountingEmbed()
    first = build_index(CHUNKS[:-1], embed=first_embed)
    assert (first.embedded, first.reused) == (len(CHUNKS) - 1, 0)
    assert len(first_embed.texts) == len(CHUNKS) - 1

    second_embed = CountingEmbed()
    second = build_index(CHUNKS, previous=first, embed=second_embed)
    assert (second.embedded, second.reused) == (1, len(CHUNKS) - 1)
    assert second_embed.texts == [f"\n{TEXTS[-1]}"]
    # the unchanged chunks keep their rows bit for bit
    assert np.array_equal(second.embeddings[:-1], first.embeddings)

    # ... and rank as an index built from scratch ranks them
    scratch = build_index(CHUNKS)
    for question in ["When is the canteen open?", "What is part 88-1204?", "Wi-Fi password"]:
        got, want = second.retrieve(question, k=4), scratch.retrieve(question, k=4)
        assert [h.chunk["id"] for h in got] == [h.chunk["id"] for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
        assert [h.lexical for h in got] == [h.lexical for h in want]


def test_changed_and_duplicate_texts() -> None:
    first = build_index(CHUNKS[:3])
    changed = [dict(CHUNKS[0], text=CHUNKS[0]["text"] + " Unused days lapse."), *CHUNKS[1:3]]
    duplicate = dict(CHUNKS[1], id="chunk-copy", document_id="doc-copy")
    counting = CountingEmbed()
    second = build_index([*changed, duplicate], previous=first, embed=counting)
    # the changed chunk is embedded again; the copy of chunk 1 reuses its row
    assert (second.embedded, second.reused) == (1, 3)
    assert len(counting.texts) == 1
    assert np.array_equal(second.embeddings[3], first.embeddings[1])


def test_another_model_reuses_nothing() -> None:
    first = build_index(CHUNKS[:2])
    second = build_index(CHUNKS[:2], previous=first, model="another-model")
    assert (second.embedded, second.reused) == (2, 0)


def test_index_version_is_deterministic() -> None:
    assert index_version(CHUNKS) == index_version([dict(c) for c in CHUNKS])
    assert len(index_version(CHUNKS)) == 16
    assert index_version(CHUNKS) != index_version(CHUNKS[:-1])
    assert index_version(CHUNKS) != index_version(CHUNKS[::-1])
    moved = [dict(CHUNKS[0], page=9), *CHUNKS[1:]]
    assert index_version(CHUNKS) != index_version(moved)
    assert index_version(CHUNKS) != index_version(CHUNKS, model="another-model")
    assert chunk_hashes(moved) == chunk_hashes(CHUNKS)


# --- storage ------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def project_store(request, tmp_path) -> ProjectStore:
    if request.param == "local":
        return ProjectStore(LocalObjectStore(tmp_path / "objects"), "acme", "handbook")
    server = request.getfixturevalue("s3_server")
    resource = ObjectStoreResource(
        backend="s3",
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        bucket=f"t-{uuid.uuid4().hex[:16]}",
        secure=False,
    )
    return resource.project("acme", "handbook")


def test_save_and_load_round_trip(project_store: ProjectStore, index: HybridIndex) -> None:
    assert latest_index_key(project_store) is None
    key = save_index(project_store, index, extra={"dataset_version": "v1"})
    set_latest(project_store, key)
    version = index.version
    assert key == f"indexes/{version}/manifest.json"
    assert latest_index_key(project_store) == key
    assert project_store.get_json(LATEST_KEY) == {"index_key": key, "index_version": version}
    assert sorted(project_store.list_keys(f"indexes/{version}/")) == [
        f"indexes/{version}/{name}"
        for name in ("chunks.jsonl", "embeddings.npy", "hashes.json", "manifest.json")
    ]
    manifest = project_store.get_json(key)
    assert manifest["index_version"] == version
    assert manifest["model"] == MODEL_NAME
    assert (manifest["chunks"], manifest["embedded"], manifest["reused"]) == (len(CHUNKS), 7, 0)
    assert manifest["dimensions"] == 384
    assert manifest["confidence_threshold"] == CONFIDENCE_THRESHOLD
    assert manifest["dataset_version"] == "v1"
    assert set(manifest["files"]) == {"chunks", "embeddings", "hashes"}

    for ref in (key, manifest, {"index_key": key}):
        loaded = load_index(project_store, ref)
        assert loaded.chunks == index.chunks
        assert loaded.hashes == index.hashes
        assert np.array_equal(loaded.embeddings, index.embeddings)
        assert loaded.version == version
        assert loaded.manifest == manifest
        question = "What is part 88-1204?"
        assert [h.citation() for h in loaded.retrieve(question)] == [
            h.citation() for h in index.retrieve(question)
        ]

    # the loaded index serves as the previous version of the next build
    previous = read_index(project_store, key)
    new = dict(make_chunks(["A brand new chunk about parking."])[0], id="chunk-new")
    extended = build_index([*CHUNKS, new], previous)
    assert (extended.embedded, extended.reused) == (1, len(CHUNKS))

    # saving the same version again leaves the stored one as it is
    again = build_index(CHUNKS, previous)
    assert save_index(project_store, again) == key
    assert project_store.get_json(key)["embedded"] == 7
    assert again.manifest == manifest


def test_a_tampered_file_is_refused(tmp_path, index: HybridIndex) -> None:
    store = ProjectStore(LocalObjectStore(tmp_path / "objects"), "acme", "handbook")
    key = save_index(store, index)
    manifest = store.get_json(key)
    rows = index.embeddings.copy()
    rows[0, 0] += 0.5
    buffer = io.BytesIO()
    np.save(buffer, rows)
    store.put_bytes(manifest["files"]["embeddings"]["key"], buffer.getvalue())
    with pytest.raises(ValueError, match="sha256"):
        load_index(store, key)
