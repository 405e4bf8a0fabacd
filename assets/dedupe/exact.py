"""Exact duplicates: documents whose normalised text hashes are equal."""

from __future__ import annotations


def exact_duplicates(documents: list[dict]) -> dict[str, str]:
    """Map each duplicate document id to the id of the first document (in the given order)
    with the same `text_hash`; kept documents are absent."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for doc in documents:
        kept = first.setdefault(doc["text_hash"], doc["id"])
        if kept != doc["id"]:
            duplicates[doc["id"]] = kept
    return duplicates
