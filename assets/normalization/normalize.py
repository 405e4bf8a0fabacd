"""Normalise extracted text, and fingerprint it for exact deduplication."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Invisible characters that PDF and Word exports leave inside words: soft hyphen,
# zero-width space, word joiner, stray BOM. ZWJ/ZWNJ stay: emoji and several
# scripts need them.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"))
# Control characters (Unicode category Cc) other than \t and \n, and lone
# surrogates, which come from lossy decoding and cannot even be encoded to UTF-8.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_TRAILING_SPACE = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")
# Lookarounds, so "a-\nb-\nc" joins both breaks.
_HYPHENATED_BREAK = re.compile(r"(?<=(\w))-\n ?(?=(\w))")
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def normalize_text(text: str) -> str:
    """Canonical form of extracted text: NFKC, plain spaces and newlines, no
    control characters, at most one blank line in a row, end-of-line hyphenation undone."""
    text = unicodedata.normalize("NFKC", text)
    # splitlines knows every line boundary Unicode has (\r\n, \r, \v, \f, \x85,
    # \u2028, \u2029); PDF extractors emit most of them.
    text = "\n".join(text.splitlines())
    text = text.translate(_INVISIBLE)
    text = _CONTROL.sub("", text)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _HYPHENATED_BREAK.sub(_join_hyphenated, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_hyphenated(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    # Only lowercase on both sides: "Jean-\nPierre" and "COVID-\n19" keep their hyphen.
    if before.islower() and after.islower():
        return ""
    return match.group(0)


def text_hash(text: str) -> str:
    """SHA-256 hex of the text with case and whitespace differences erased.

    Two documents that differ only in layout or capitalisation are the same
    document for training purposes, so their hashes collide on purpose.
    """
    canonical = " ".join(normalize_text(text).casefold().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def word_count(text: str) -> int:
    """Number of words; each CJK character counts as one, since those scripts do
    not separate words with spaces."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + len(_WORD.findall(_CJK_CHAR.sub(" ", text)))
