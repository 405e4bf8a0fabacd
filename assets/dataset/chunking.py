"""Chunks with provenance: paragraphs grouped under their heading, each chunk remembering its
document, page, character span within the page text and heading path."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

CHUNKER_VERSION = "chunk-v1"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLOCK = re.compile(r"\S(?:.*?)(?=\n\s*\n|\Z)", re.S)


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    filename: str
    page: int
    start: int
    end: int
    heading: list[str]
    text: str
    version: str = field(default=CHUNKER_VERSION)

    def to_dict(self) -> dict:
        return asdict(self)


def _chunk_id(document_id: str, page: int, start: int, end: int) -> str:
    return hashlib.sha256(f"{document_id}:{page}:{start}:{end}".encode()).hexdigest()[:20]


def _make_chunk(
    document_id: str, filename: str, page: int, text: str, span: tuple[int, int], path: list[str]
) -> Chunk | None:
    start, end = span
    body = text[start:end].strip()
    if not body:
        return None
    return Chunk(
        id=_chunk_id(document_id, page, start, end),
        document_id=document_id,
        filename=filename,
        page=page,
        start=start,
        end=end,
        heading=list(path),
        text=body,
    )


def _blocks(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Paragraph spans; a paragraph longer than `max_chars` (a table, a CSV) is cut at line ends."""
    spans = []
    for match in _BLOCK.finditer(text):
        start, end = match.start(), match.end()
        if end - start <= max_chars:
            spans.append((start, end))
            continue
        line_start = start
        piece_start = start
        while line_start < end:
            newline = text.find("\n", line_start, end)
            line_end = end if newline == -1 else newline
            if line_end - piece_start > max_chars and line_start > piece_start:
                spans.append((piece_start, line_start - 1))
                piece_start = line_start
            line_start = line_end + 1
        spans.append((piece_start, end))
    return spans


def chunk_pages(
    document_id: str,
    filename: str,
    pages: list[dict],
    max_chars: int = 800,
) -> list[Chunk]:
    """Split each page's text into blocks (paragraphs) and pack consecutive blocks of the same
    section into chunks of at most `max_chars` (a single longer block stays whole)."""
    spans: list[tuple[int, str, tuple[int, int], list[str]]] = []
    path: list[str] = []
    for page in pages:
        text: str = page["text"]
        number = int(page["number"])
        current: tuple[int, int] | None = None
        current_path = list(path)
        for start, end in _blocks(text, max_chars):
            heading = _HEADING.match(text[start:end].split("\n", 1)[0])
            starts_section = heading is not None
            if heading:
                level = len(heading.group(1))
                path = path[: level - 1] + [heading.group(2).strip()]
            if current and (starts_section or end - current[0] > max_chars):
                spans.append((number, text, current, current_path))
                current = None
            if current is None:
                current = (start, end)
                current_path = list(path)
            else:
                current = (current[0], end)
        if current:
            spans.append((number, text, current, current_path))
    chunks = [_make_chunk(document_id, filename, n, t, span, p) for n, t, span, p in spans]
    return [c for c in chunks if c is not None]
