"""Normalisation stage: detect a document's type, extract its text, normalise it."""
