from __future__ import annotations

import pytest

from assets.dedupe.exact import exact_duplicates


def _docs(*pairs: tuple[str, str]) -> list[dict]:
    return [{"id": doc_id, "text_hash": h} for doc_id, h in pairs]


@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        pytest.param([], {}, id="empty"),
        pytest.param(_docs(("a", "h1")), {}, id="single"),
        pytest.param(_docs(("a", "h1"), ("b", "h2"), ("c", "h3")), {}, id="all-distinct"),
        pytest.param(_docs(("a", "h1"), ("b", "h1")), {"b": "a"}, id="pair"),
        pytest.param(
            _docs(("a", "h1"), ("b", "h1"), ("c", "h1")), {"b": "a", "c": "a"}, id="triple"
        ),
        pytest.param(
            _docs(("a", "h1"), ("b", "h2"), ("c", "h1"), ("d", "h2"), ("e", "h3")),
            {"c": "a", "d": "b"},
            id="interleaved",
        ),
        pytest.param(_docs(("a", "h1"), ("a", "h1")), {}, id="same-document-twice"),
    ],
)
def test_exact_duplicates(documents: list[dict], expected: dict[str, str]) -> None:
    assert exact_duplicates(documents) == expected


def test_first_occurrence_in_the_given_order_is_kept() -> None:
    docs = _docs(("z", "h"), ("a", "h"), ("m", "h"))
    assert exact_duplicates(docs) == {"a": "z", "m": "z"}
    assert exact_duplicates(list(reversed(docs))) == {"a": "m", "z": "m"}


def test_kept_and_distinct_documents_are_absent_and_targets_are_kept() -> None:
    docs = _docs(*[(f"d{i}", f"h{i % 4}") for i in range(20)])
    duplicates = exact_duplicates(docs)
    kept = {d["id"] for d in docs} - set(duplicates)
    assert kept == {"d0", "d1", "d2", "d3"}
    assert set(duplicates.values()) <= kept  # no chains: always points at a kept document
    by_id = {d["id"]: d["text_hash"] for d in docs}
    assert all(by_id[dup] == by_id[orig] for dup, orig in duplicates.items())


def test_extra_fields_are_ignored() -> None:
    docs = [
        {"id": "a", "text_hash": "h", "filename": "a.pdf"},
        {"id": "b", "text_hash": "h", "filename": "b.docx"},
    ]
    assert exact_duplicates(docs) == {"b": "a"}
