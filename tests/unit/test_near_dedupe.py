from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct

import pytest

from assets.dedupe.near import NearDuplicateIndex, exact_jaccard, shingles, signature

_VOCABULARY_TEXT = (
    "account agreement annual approval asset audit balance benefit board budget claim client "
    "contract cost customer data deadline delivery department deposit employee expense "
    "finance fund grant holiday incident insurance invoice leave license manager meeting "
    "notice office order payment pension policy premium process project purchase quarter "
    "record refund report request review risk salary schedule security service staff "
    "supplier support tax team training travel vendor warranty the a of to and in for on "
    "with by at from is are was be will must should may each every any all new"
)
_VOCABULARY = _VOCABULARY_TEXT.split()


def _words(seed: int, n: int = 300) -> list[str]:
    return random.Random(seed).choices(_VOCABULARY, k=n)


def _text(words: list[str]) -> str:
    return " ".join(words)


def _edit_runs(words: list[str], runs: int, length: int, seed: int) -> list[str]:
    """Replace `runs` separate runs of `length` words with words from outside the vocabulary."""
    rng = random.Random(seed)
    edited = list(words)
    step = len(words) // runs
    for run in range(runs):
        start = run * step + rng.randrange(step - length)
        for i in range(start, start + length):
            edited[i] = f"changed{run}x{i}"
    return edited


def _edited_until(words: list[str], low: float, high: float, seed: int) -> list[str]:
    """Substitute single words at random until the exact Jaccard with the source falls in [low, high)."""
    rng = random.Random(seed)
    edited = list(words)
    while exact_jaccard(_text(words), _text(edited)) >= high:
        i = rng.randrange(len(edited))
        edited[i] = f"edit{i}"
    assert exact_jaccard(_text(words), _text(edited)) >= low
    return edited


def _index(threshold: float = 0.8, **docs: str) -> NearDuplicateIndex:
    index = NearDuplicateIndex(threshold)
    for doc_id, text in docs.items():
        index.add(doc_id, text)
    return index


SOURCE = _text(_words(1))
UNRELATED = _text(_words(2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", set(), id="empty"),
        pytest.param("Hello", {"hello"}, id="one-word"),
        pytest.param("Hello,  World!", {"hello world"}, id="two-words"),
        pytest.param("a b c d", {"a b c", "b c d"}, id="sliding"),
        pytest.param(
            "The CAT sat.\nThe cat sat",
            {"the cat sat", "cat sat the", "sat the cat"},
            id="casefold-and-set",
        ),
    ],
)
def test_shingles_are_word_trigrams_of_the_normalised_text(text: str, expected: set[str]) -> None:
    assert shingles(text) == expected


def test_exact_jaccard() -> None:
    assert exact_jaccard("a b c d", "a b c d") == 1.0
    assert exact_jaccard("a b c d", "a b c e") == pytest.approx(1 / 3)
    assert exact_jaccard("Hello, World!", "hello world") == 1.0
    assert exact_jaccard("a b c", "x y z") == 0.0
    assert exact_jaccard("", "") == 1.0


def test_signature_is_deterministic_and_seeded() -> None:
    assert signature(SOURCE) == signature(SOURCE)
    assert len(signature(SOURCE, num_perm=64)) == 64
    assert signature(SOURCE, seed=2) != signature(SOURCE)
    assert signature(SOURCE).jaccard(signature(SOURCE.upper())) == 1.0


def test_identical_text_is_found_with_similarity_one() -> None:
    index = _index(a=SOURCE, b=UNRELATED)
    assert index.query(SOURCE) == [("a", 1.0)]
    assert index.find_duplicate("new", SOURCE) == ("a", 1.0)


def test_copy_with_five_percent_of_words_rewritten_is_found() -> None:
    # 15 of 300 words, in three rewritten phrases, as a revision would.
    copy = _text(_edit_runs(_words(1), runs=3, length=5, seed=3))
    assert 0.8 <= exact_jaccard(SOURCE, copy) < 0.95
    match = _index(a=SOURCE, b=UNRELATED).find_duplicate("copy", copy)
    assert match is not None
    assert match[0] == "a"
    assert match[1] >= 0.8


def test_scattered_word_edits_cost_three_shingles_each() -> None:
    # Why a threshold of 0.8 tolerates rewritten phrases better than scattered typos:
    # 5% of words changed one by one leaves a Jaccard near 0.85 / 1.15.
    copy = _text(_edit_runs(_words(1), runs=15, length=1, seed=4))
    assert exact_jaccard(SOURCE, copy) == pytest.approx(0.74, abs=0.03)
    assert _index(a=SOURCE).find_duplicate("copy", copy) is None


def test_unrelated_text_is_not_found() -> None:
    assert exact_jaccard(SOURCE, UNRELATED) < 0.1
    index = _index(a=SOURCE)
    assert index.query(UNRELATED) == []
    assert index.find_duplicate("b", UNRELATED) is None


def test_threshold_is_respected() -> None:
    pair = _text(_edited_until(_words(1), 0.55, 0.65, seed=5))
    assert _index(0.8, a=SOURCE).query(pair) == []
    [(doc_id, estimate)] = _index(0.5, a=SOURCE).query(pair)
    assert doc_id == "a"
    assert 0.5 <= estimate < 0.8


def test_margin_lowers_the_cut_on_the_estimate() -> None:
    pair = _text(_edited_until(_words(1), 0.58, 0.62, seed=6))
    strict = NearDuplicateIndex(0.8)
    loose = NearDuplicateIndex(0.8, margin=0.3)
    for index in (strict, loose):
        index.add("a", SOURCE)
    assert loose.cutoff == pytest.approx(0.5)
    assert strict.query(pair) == []
    assert [doc_id for doc_id, _ in loose.query(pair)] == ["a"]


def test_query_sorts_by_similarity_then_id() -> None:
    close = _text(_edit_runs(_words(1), runs=1, length=3, seed=7))
    further = _text(_edit_runs(_words(1), runs=2, length=5, seed=8))
    index = _index(0.7, far=further, near=close, same_b=SOURCE, same_a=SOURCE, other=UNRELATED)
    results = index.query(SOURCE)
    assert [doc_id for doc_id, _ in results] == ["same_a", "same_b", "near", "far"]
    similarities = [sim for _, sim in results]
    assert similarities == sorted(similarities, reverse=True)


def test_find_duplicate_excludes_the_document_itself() -> None:
    index = _index(a=SOURCE)
    assert index.find_duplicate("a", SOURCE) is None
    index.add("b", SOURCE)
    assert index.find_duplicate("a", SOURCE) == ("b", 1.0)
    assert index.find_duplicate("b", SOURCE) == ("a", 1.0)


def test_remove() -> None:
    index = _index(a=SOURCE, b=UNRELATED)
    index.remove("a")
    assert "a" not in index
    assert "b" in index
    assert len(index) == 1
    assert index.query(SOURCE) == []
    with pytest.raises(KeyError):
        index.remove("a")
    index.add("a", SOURCE)
    assert index.query(SOURCE) == [("a", 1.0)]


def test_adding_an_id_again_replaces_its_text() -> None:
    index = _index(a=SOURCE)
    index.add("a", UNRELATED)
    assert len(index) == 1
    assert index.query(SOURCE) == []
    assert index.query(UNRELATED) == [("a", 1.0)]


@pytest.mark.parametrize(
    ("threshold", "num_perm", "margin"),
    [
        pytest.param(0.8, 128, 0.0, id="defaults"),
        pytest.param(0.5, 64, 0.0, id="other-parameters"),
        pytest.param(0.9, 256, 0.05, id="margin"),
    ],
)
def test_dumps_loads_round_trip(threshold: float, num_perm: int, margin: float) -> None:
    index = NearDuplicateIndex(threshold, num_perm, margin=margin)
    texts = {f"doc-{seed}": _text(_words(seed)) for seed in range(10, 20)}
    texts["copy"] = _text(_edit_runs(_words(10), runs=2, length=4, seed=9))
    texts["ünïcode ✓"] = SOURCE
    for doc_id, text in texts.items():
        index.add(doc_id, text)

    loaded = NearDuplicateIndex.loads(index.dumps())

    assert (loaded.threshold, loaded.num_perm, loaded.margin) == (threshold, num_perm, margin)
    assert (loaded.bands, loaded.rows) == (index.bands, index.rows)
    assert len(loaded) == len(index)
    assert all(doc_id in loaded for doc_id in texts)
    for text in [*texts.values(), UNRELATED]:
        assert loaded.query(text) == index.query(text)
    assert [doc_id for doc_id, _ in loaded.query(texts["doc-10"])] == ["doc-10", "copy"]


def test_loaded_index_accepts_new_documents_and_removals() -> None:
    loaded = NearDuplicateIndex.loads(_index(a=SOURCE).dumps())
    loaded.add("b", SOURCE)
    loaded.remove("a")
    assert loaded.query(SOURCE) == [("b", 1.0)]


def test_empty_index_round_trips() -> None:
    loaded = NearDuplicateIndex.loads(NearDuplicateIndex().dumps())
    assert len(loaded) == 0
    assert loaded.query(SOURCE) == []


def test_dumps_is_compact() -> None:
    index = NearDuplicateIndex()
    for seed in range(100):
        index.add(f"doc-{seed:03d}", _text(_words(seed)))
    # 128 uint32 values per document plus a header of ids and parameters.
    assert len(index.dumps()) < 100 * (128 * 4 + 20) + 1024


def _resigned(payload: bytes, **changes: object) -> bytes:
    """The payload with header fields changed and a valid checksum, as a forger would make it."""
    body = payload[:-32]
    (size,) = struct.unpack_from(">I", body, 8)
    header = json.loads(body[12 : 12 + size])
    header.update(changes)
    encoded = json.dumps(header).encode()
    body = body[:8] + struct.pack(">I", len(encoded)) + encoded + body[12 + size :]
    return body + hashlib.sha256(body).digest()


def _flip(payload: bytes, at: int) -> bytes:
    return payload[:at] + bytes([payload[at] ^ 0x01]) + payload[at + 1 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda p: b"", id="empty"),
        pytest.param(lambda p: p[:-1], id="truncated"),
        pytest.param(lambda p: p[:40], id="too-short"),
        pytest.param(lambda p: _flip(p, len(p) - 100), id="flipped-hash-value"),
        pytest.param(lambda p: _flip(p, 20), id="flipped-header"),
        pytest.param(lambda p: b"XXXXXXXX" + p[8:], id="wrong-magic"),
        pytest.param(lambda p: pickle.dumps({"doc_ids": []}), id="pickle"),
        pytest.param(lambda p: json.dumps({"format": "privatune.near-dedupe"}).encode(), id="json"),
        pytest.param(lambda p: _resigned(p, version=2), id="future-version"),
        pytest.param(lambda p: _resigned(p, scheme="legacy"), id="other-minhash-scheme"),
        pytest.param(lambda p: _resigned(p, shingles="char-5"), id="other-shingles"),
        pytest.param(lambda p: _resigned(p, num_perm=64), id="num-perm-mismatch"),
        pytest.param(lambda p: _resigned(p, num_perm="128"), id="num-perm-type"),
        pytest.param(lambda p: _resigned(p, threshold=1.5), id="threshold-range"),
        pytest.param(lambda p: _resigned(p, margin=0.9), id="margin-range"),
        pytest.param(lambda p: _resigned(p, doc_ids=["a", "a"]), id="duplicate-ids"),
        pytest.param(lambda p: _resigned(p, doc_ids=["a"]), id="too-few-ids"),
        pytest.param(lambda p: _resigned(p, doc_ids=[1, 2]), id="id-type"),
        pytest.param(lambda p: _resigned(p, weights=[0.5]), id="weights"),
    ],
)
def test_loads_rejects_corrupted_or_foreign_payloads(corrupt) -> None:
    payload = _index(a=SOURCE, b=UNRELATED).dumps()
    with pytest.raises(ValueError):
        NearDuplicateIndex.loads(corrupt(payload))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"threshold": 0.0}, id="threshold-zero"),
        pytest.param({"threshold": 1.5}, id="threshold-above-one"),
        pytest.param({"num_perm": 1}, id="one-permutation"),
        pytest.param({"margin": 0.8}, id="margin-reaches-threshold"),
        pytest.param({"weights": (0.0, 0.0)}, id="zero-weights"),
    ],
)
def test_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        NearDuplicateIndex(**kwargs)


def test_threshold_one_finds_only_identical_signatures() -> None:
    index = _index(1.0, a=SOURCE)
    assert index.query(SOURCE) == [("a", 1.0)]
    assert index.query(_text(_edit_runs(_words(1), runs=1, length=1, seed=10))) == []
