"""Chunks with provenance: paragraphs, lists and tables grouped under their heading, each chunk
remembering its document, page, character span within the page text and heading path.

Sizes are counted in characters, or (as the `examples` asset does) in tokens of the base model's
tokenizer, with an overlap of trailing blocks between consecutive chunks of one section."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

CHUNKER_VERSION = "chunk-v2"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLOCK = re.compile(r"\S(?:.*?)(?=\n\s*\n|\Z)", re.S)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^[^:;\n]{1,60}:[^;\n]*(?:;\s*[^:;\n]{1,60}:[^;\n]*)+$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

TokenCounter = Callable[[str], int]


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
    kind: str = "text"
    tokens: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _chunk_id(document_id: str, page: int, start: int, end: int) -> str:
    return hashlib.sha256(f"{document_id}:{page}:{start}:{end}".encode()).hexdigest()[:20]


def block_kind(text: str) -> str:
    """`heading`, `table` (pipe or `key: value; key: value` rows), `list` or `text`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "text"
    if _HEADING.match(lines[0]) and len(lines) == 1:
        return "heading"
    body = [line for line in lines if not _HEADING.match(line)] or lines
    if sum(bool(_TABLE_ROW.match(line)) for line in body) * 2 > len(body):
        return "table"
    if sum(bool(_LIST_ITEM.match(line)) for line in body) * 2 > len(body):
        return "list"
    return "text"


def _make_chunk(
    document_id: str,
    filename: str,
    page: int,
    text: str,
    span: tuple[int, int],
    path: list[str],
    count: TokenCounter | None,
) -> Chunk | None:
    start, end = span
    raw = text[start:end]
    body = raw.strip()
    if not body:
        return None
    # The span is that of the stripped text, so `page_text[start:end] == chunk.text`.
    start += len(raw) - len(raw.lstrip())
    end = start + len(body)
    return Chunk(
        id=_chunk_id(document_id, page, start, end),
        document_id=document_id,
        filename=filename,
        page=page,
        start=start,
        end=end,
        heading=list(path),
        text=body,
        kind=block_kind(body),
        tokens=count(body) if count else None,
    )


def _cut(
    text: str, start: int, end: int, size: Callable[[int, int], int], limit: int, pattern: str
) -> list[tuple[int, int]]:
    """Cut [start, end) at line ends (`pattern` "\n") or sentence ends into pieces within `limit`;
    one piece that cannot be cut further stays whole."""
    if pattern == "\n":
        cuts = [m.start() for m in re.finditer("\n", text[start:end])]
        ends = [start + c for c in cuts]
        starts = [e + 1 for e in ends]
    else:
        found = list(_SENTENCE_END.finditer(text, start, end))
        ends = [m.start() for m in found]
        starts = [m.end() for m in found]
    units = list(zip([start, *starts], [*ends, end], strict=True))
    spans: list[tuple[int, int]] = []
    piece_start, piece_end = units[0]
    for unit_start, unit_end in units[1:]:
        if size(piece_start, unit_end) > limit:
            spans.append((piece_start, piece_end))
            piece_start = unit_start
        piece_end = unit_end
    spans.append((piece_start, piece_end))
    return spans


def _blocks(
    text: str, max_size: int, size: Callable[[int, int], int] | None = None, sentences: bool = False
) -> list[tuple[int, int]]:
    """Paragraph spans; a paragraph over `max_size` (a table, a CSV) is cut at line ends, and with
    `sentences` a still too long line is cut at sentence ends."""
    measure = size or (lambda a, b: b - a)
    spans = []
    for match in _BLOCK.finditer(text):
        start, end = match.start(), match.end()
        if measure(start, end) <= max_size:
            spans.append((start, end))
            continue
        for piece in _cut(text, start, end, measure, max_size, "\n"):
            if sentences and measure(*piece) > max_size:
                spans.extend(_cut(text, piece[0], piece[1], measure, max_size, "sentence"))
            else:
                spans.append(piece)
    return spans


def chunk_pages(
    document_id: str,
    filename: str,
    pages: list[dict],
    max_chars: int = 800,
    max_tokens: int | None = None,
    overlap_tokens: int = 0,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Split each page's text into blocks (paragraphs, lists, tables) and pack consecutive blocks
    of the same section into chunks of at most `max_chars` characters (a single longer block
    stays whole).

    With `max_tokens` and `count_tokens` (the base model's tokenizer) sizes are tokens instead:
    a too long block is cut at line ends, then at sentence ends; a table never shares a chunk
    with prose; and when a section continues in a new chunk, that chunk repeats the previous
    chunk's trailing blocks up to `overlap_tokens`."""
    by_tokens = max_tokens is not None and count_tokens is not None
    limit = max_tokens if by_tokens and max_tokens is not None else max_chars
    spans: list[tuple[int, str, tuple[int, int], list[str]]] = []
    path: list[str] = []
    for page in pages:
        text: str = page["text"]
        number = int(page["number"])
        if by_tokens and count_tokens is not None:
            counter = count_tokens

            def size(a: int, b: int, text: str = text, counter: TokenCounter = counter) -> int:
                return counter(text[a:b])
        else:

            def size(a: int, b: int) -> int:
                return b - a

        current: tuple[int, int] | None = None
        members: list[tuple[int, int]] = []
        current_path = list(path)
        previous_kind = ""
        for start, end in _blocks(text, limit, size if by_tokens else None, sentences=by_tokens):
            first_line = text[start:end].split("\n", 1)[0]
            heading = _HEADING.match(first_line)
            starts_section = heading is not None
            if heading:
                level = len(heading.group(1))
                path = path[: level - 1] + [heading.group(2).strip()]
            kind = block_kind(text[start:end]) if by_tokens else ""
            switches = (
                by_tokens
                and current is not None
                and (kind == "table") != (previous_kind == "table")
            )
            overlap_from: int | None = None
            if current and (starts_section or switches or size(current[0], end) > limit):
                spans.append((number, text, current, current_path))
                if by_tokens and not starts_section and not switches and overlap_tokens > 0:
                    for block_start, _ in reversed(members):
                        # Never the chunk's own first block (no progress), never past the limit.
                        if (
                            block_start == current[0]
                            or size(block_start, current[1]) > overlap_tokens
                        ):
                            break
                        overlap_from = block_start
                    if overlap_from is not None and size(overlap_from, end) > limit:
                        overlap_from = None
                current = None
                members = []
            if current is None:
                current = (overlap_from if overlap_from is not None else start, end)
                current_path = list(path)
            else:
                current = (current[0], end)
            members.append((start, end))
            if kind != "heading":
                previous_kind = kind
        if current:
            spans.append((number, text, current, current_path))
    counter_for_chunks = count_tokens if by_tokens else None
    chunks = [
        _make_chunk(document_id, filename, n, t, span, p, counter_for_chunks)
        for n, t, span, p in spans
    ]
    return [c for c in chunks if c is not None]


@lru_cache(maxsize=4)
def _tokenizer(model_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def tokenizer_counter(model_path: Path) -> TokenCounter:
    """Token counts by the base model's own tokenizer (loaded once per process)."""
    tokenizer = _tokenizer(str(model_path))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
