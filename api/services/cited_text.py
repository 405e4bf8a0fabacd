"""The page text a document viewer shows, and where a citation lies in it.

Citations index a page's screened text (`screened/<sha256>.json`: redacted under the project's
policy): a chunk's `start`/`end` are its characters in that text, and a quote's
`quote_start`/`quote_end` are the chunk's `start` plus the quoted sentences' characters within
the chunk's text. Personal data a second screening found in a chunk (settings.pii_residual =
review) is replaced by `<TYPE>` placeholders in the chunk only, so such a chunk's text is no
longer its page's slice and its quote offsets mix two texts. `residual_edits` recovers those
replacements in page characters, `quote_span` maps a quote onto the page, and `pieces` gives
the page with the replacements applied and the span marked: what the viewer shows never holds
what the chunk hid, and the mark covers exactly the cited characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# What the screener writes in place of a finding (assets/pii/screen.py `redact`).
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")


@dataclass(frozen=True)
class Segment:
    """Page characters [start, end) shown as chunk characters [chunk_start, chunk_end):
    the same text (`replaced` False) or a placeholder in their place."""

    start: int
    end: int
    chunk_start: int
    chunk_end: int
    replaced: bool


@dataclass(frozen=True)
class Edit:
    """Page characters [start, end) shown as `text` (a placeholder)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Piece:
    text: str
    marked: bool


def _parts(redacted: str) -> list[tuple[bool, str]]:
    """(is_placeholder, text) runs of a redacted text, empty literals left out."""
    parts: list[tuple[bool, str]] = []
    position = 0
    for match in PLACEHOLDER.finditer(redacted):
        if match.start() > position:
            parts.append((False, redacted[position : match.start()]))
        parts.append((True, match.group(0)))
        position = match.end()
    if position < len(redacted):
        parts.append((False, redacted[position:]))
    return parts


def align(original: str, redacted: str) -> list[Segment] | None:
    """`redacted` as `original` with some non-empty substrings replaced by placeholders: the
    segments that say which; None when it is not (the page changed since the chunk was cut).
    A placeholder the page already holds is kept as text; a literal run after a replacement is
    taken at its first occurrence (the last one is the page's end)."""
    segments: list[Segment] = []
    at, chunk_at = 0, 0
    pending: int | None = None  # chunk offset where unmatched placeholders began
    parts = _parts(redacted)
    for index, (is_placeholder, text) in enumerate(parts):
        if is_placeholder:
            if pending is None and original.startswith(text, at):
                segments.append(Segment(at, at + len(text), chunk_at, chunk_at + len(text), False))
                at += len(text)
            elif pending is None:
                pending = chunk_at
            chunk_at += len(text)
            continue
        if pending is None:
            if not original.startswith(text, at):
                return None
        else:
            last = index == len(parts) - 1
            found = len(original) - len(text) if last else original.find(text, at + 1)
            if found < at + 1 or not original.startswith(text, found):
                return None
            segments.append(Segment(at, found, pending, chunk_at, True))
            at, pending = found, None
        segments.append(Segment(at, at + len(text), chunk_at, chunk_at + len(text), False))
        at += len(text)
        chunk_at += len(text)
    if pending is not None:
        if at >= len(original):
            return None
        segments.append(Segment(at, len(original), pending, chunk_at, True))
        at = len(original)
    return segments if at == len(original) else None


def residual_edits(page_text: str, chunks: Iterable[Mapping[str, Any]]) -> list[Edit]:
    """What the page's chunks hide that the page text shows, in page characters, sorted and
    without overlaps (overlapping ones merge: everything either chunk hid stays hidden). A
    chunk that no longer matches the page at all hides its whole span."""
    edits: list[Edit] = []
    for chunk in chunks:
        start, end, text = int(chunk["start"]), int(chunk["end"]), str(chunk["text"])
        original = page_text[start:end]
        if text == original:
            continue
        segments = align(original, text)
        if segments is None:
            edits.append(Edit(start, end, text))
            continue
        edits.extend(
            Edit(start + s.start, start + s.end, text[s.chunk_start : s.chunk_end])
            for s in segments
            if s.replaced
        )
    merged: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e.start, -e.end)):
        if merged and edit.start < merged[-1].end:
            last = merged[-1]
            if edit.end > last.end:
                merged[-1] = Edit(last.start, edit.end, last.text)
            continue
        merged.append(edit)
    return merged


def quote_span(page_text: str, chunk: Mapping[str, Any], start: int, end: int) -> tuple[int, int]:
    """A citation's offsets (`quote_start`/`quote_end`, or the chunk's own `start`/`end`) in
    page characters. They are the page's already when the chunk's text is its page slice;
    otherwise the chunk characters are mapped through the alignment (a bound inside a
    placeholder takes the whole replaced text), or the whole chunk when they do not align."""
    chunk_start, chunk_end, text = int(chunk["start"]), int(chunk["end"]), str(chunk["text"])
    if start == chunk_start and end == chunk_end:
        return start, end
    original = page_text[chunk_start:chunk_end]
    if text == original:
        return start, end
    segments = align(original, text)
    if segments is None:
        return chunk_start, chunk_end

    def page_offset(offset: int, is_end: bool) -> int:
        local = offset - chunk_start
        for s in segments:
            inside = s.chunk_start < local < s.chunk_end
            if inside or local == (s.chunk_end if is_end else s.chunk_start):
                if not s.replaced:
                    return chunk_start + s.start + (local - s.chunk_start)
                return chunk_start + (s.end if is_end else s.start)
        return chunk_end if is_end else chunk_start

    return page_offset(start, False), page_offset(end, True)


def pieces(page_text: str, edits: list[Edit], start: int | None, end: int | None) -> list[Piece]:
    """The page as shown: `edits` applied, page characters [start, end) marked (a replaced
    run the span touches is marked whole); adjacent pieces of one kind joined."""
    marked_range = (start, end) if start is not None and end is not None else None
    out: list[Piece] = []

    def add(text: str, marked: bool) -> None:
        if not text:
            return
        if out and out[-1].marked == marked:
            out[-1] = Piece(out[-1].text + text, marked)
        else:
            out.append(Piece(text, marked))

    def add_literal(a: int, b: int) -> None:
        if marked_range is None:
            add(page_text[a:b], False)
            return
        lo, hi = max(a, marked_range[0]), min(b, marked_range[1])
        if lo >= hi:
            add(page_text[a:b], False)
            return
        add(page_text[a:lo], False)
        add(page_text[lo:hi], True)
        add(page_text[hi:b], False)

    position = 0
    for edit in edits:
        add_literal(position, edit.start)
        touched = marked_range is not None and (
            edit.start < marked_range[1] and marked_range[0] < edit.end
        )
        add(edit.text, touched)
        position = edit.end
    add_literal(position, len(page_text))
    return out
