from __future__ import annotations

import pytest

from assets.normalization.normalize import normalize_text, text_hash, word_count


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("ﬁnance ＡＢＣ ①", "finance ABC 1", id="nfkc"),
        pytest.param("a\r\nb\rc\x0bd\x0ce\u2028f", "a\nb\nc\nd\ne\nf", id="line-endings"),
        pytest.param("tab\there", "tab here", id="tab"),
        pytest.param("bell\x07 nul\x00 esc\x1b", "bell nul esc", id="control-chars"),
        pytest.param(
            "non\u00a0breaking\u2009thin\u3000ideographic",
            "non breaking thin ideographic",
            id="odd-spaces",
        ),
        pytest.param("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth", id="invisible"),
        pytest.param("emoji 👩\u200d💻 stays", "emoji 👩\u200d💻 stays", id="zwj-kept"),
        pytest.param("many     spaces", "many spaces", id="space-runs"),
        pytest.param("trailing   \nspaces \t\n", "trailing\nspaces", id="trailing"),
        pytest.param("a\n\n\n\n\nb\n \n \n\nc", "a\n\nb\n\nc", id="blank-lines"),
        pytest.param("a\n\nb", "a\n\nb", id="one-blank-line-kept"),
        pytest.param("the employ-\nees were", "the employees were", id="hyphenation"),
        pytest.param("employ- \n ees", "employees", id="hyphenation-with-spaces"),
        pytest.param("co-\nop-\neration", "cooperation", id="hyphenation-chain"),
        pytest.param("Jean-\nPierre", "Jean-\nPierre", id="capital-after"),
        pytest.param("COVID-\n19", "COVID-\n19", id="digit-after"),
        pytest.param("state-of-the-art", "state-of-the-art", id="inline-hyphen"),
        pytest.param("- item\n- item", "- item\n- item", id="list"),
        pytest.param("  \n  padded  \n\n", "padded", id="strip"),
        pytest.param("lone \ud800 surrogate", "lone surrogate", id="surrogate"),
        pytest.param("", "", id="empty"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["ﬁnance\u00a0report-\ning\r\n\r\n\r\nend\t", "a  b\n\n\n\nc", "Ünïcödé  \u2028 text"],
)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello World", "hello   world"),
        ("Hello World\n", "  HELLO\n\n\nWORLD  "),
        ("Straße", "STRASSE"),
        ("ﬁle", "file"),
        ("a\u00a0b", "a b"),
    ],
)
def test_text_hash_collides_on_case_and_whitespace(a: str, b: str) -> None:
    assert text_hash(a) == text_hash(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Hello World", "Hello Worlds"), ("ab", "a b"), ("25 days", "26 days")],
)
def test_text_hash_differs_on_content(a: str, b: str) -> None:
    assert text_hash(a) != text_hash(b)


def test_text_hash_is_sha256_hex() -> None:
    digest = text_hash("x")
    assert len(digest) == 64
    assert int(digest, 16) >= 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \n ", 0),
        ("one", 1),
        ("Hello, world!", 2),
        ("it's a well-known fact", 4),
        ("— – - • ...", 0),
        ("line one\nline two\tthree", 5),
        ("日本語", 3),
        ("Tokyo 東京 office", 4),
        ("Ünïcödé wörds", 2),
    ],
)
def test_word_count(text: str, expected: int) -> None:
    assert word_count(text) == expected
