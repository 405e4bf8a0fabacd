from __future__ import annotations

import sys
import threading
import time

import pytest

from api.services.password_policy import WeakPassword, check_password

EMAIL = "ada.lovelace@example.com"
NAME = "Ada Lovelace"


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Zürich-Föhn-Gewitter-7",
        "日本語のパスワードはとても長い",
        "пароль-длинный-очень",
        "Tr0ub4dor&3xyzq",
        # NFKC: the ligature "ﬃ" is three characters, so 10 code points typed count as 12.
        "ﬃxqzvwkrtj",
        # a 1001-character passphrase: only its first 100 characters are scored
        "the quiet engine hums beneath a sky of copper while gulls argue over the harbour "
        "and nobody remembers the name of the ship that sailed at dawn " * 7,
    ],
    ids=[
        "passphrase",
        "german",
        "japanese",
        "russian",
        "mixed",
        "nfkc-ligature",
        "long-passphrase",
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    check_password(password, EMAIL, NAME)


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("aB3$xY9!", "at least 12 characters (this one has 8)"),
        ("", "at least 12 characters (this one has 0)"),
        # Counted after NFKC: 12 code points typed, 6 characters once the accents combine.
        ("e\u0301" * 6, "at least 12 characters (this one has 6)"),
        ("password1234", "This is a very common password."),
        ("qwertyuiop[]\\", "Straight rows of keys are easy to guess."),
        ("1qaz2wsx3edc4rfv", "too easy to guess"),
        ("密码密码密码密码密码密码", "Repeats like"),
        ("Ada.Lovelace!2024", "Do not include your e-mail address"),
        ("my name is ADA.LOVELACE ok?", "Do not include your e-mail address"),
        ("x" * 1025, "at most 1024 characters"),
    ],
    ids=[
        "short",
        "empty",
        "nfkc-combining",
        "common",
        "keyboard-walk",
        "keyboard-columns",
        "unicode-repeat",
        "local-part",
        "local-part-any-case",
        "too-long",
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, says: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password(password, EMAIL, NAME)
    error = caught.value
    assert isinstance(error, ValueError)
    assert any(says in problem for problem in error.problems), error.problems
    assert str(error).startswith("Choose another password.") and says in str(error)


def test_zxcvbns_suggestions_are_passed_on() -> None:
    with pytest.raises(WeakPassword) as caught:
        check_password("password1234", EMAIL)
    assert caught.value.problems == [
        "It is too easy to guess.",
        "This is a very common password.",
        "Add another word or two. Uncommon words are better.",
    ]


def test_the_display_name_counts_against_the_password() -> None:
    password = "Ada Lovelace 1815"
    check_password(password, "someone@example.com")  # strong enough for a stranger
    with pytest.raises(WeakPassword, match="too easy to guess"):
        check_password(password, "someone@example.com", NAME)


def test_the_local_part_rule_ignores_very_short_local_parts() -> None:
    check_password("a correct horse battery staple", "a@example.com")
    with pytest.raises(WeakPassword, match="Do not include"):
        check_password("bob correct horse battery staple", "bob@example.com")


def test_spaces_and_no_composition_rules() -> None:
    check_password("only lowercase words and spaces here", EMAIL)


def test_a_maximal_password_is_checked_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(WeakPassword, match="at most 1024"):
        check_password("Kp7$wQ2!" * 200, EMAIL)
    check_password(("kestrel umbrella 4 quartz fjord " * 40)[:1024], EMAIL)
    assert time.perf_counter() - started < 2.0


def test_concurrent_checks_use_their_own_user_inputs() -> None:
    # zxcvbn keeps the user inputs of a call in a module global: without the lock, one thread's
    # check can run against another's inputs and accept a password made of the person's name.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    accepted: list[str] = []

    def own_name() -> None:
        for _ in range(15):
            try:
                check_password("Hildegard Wolfenstein", "hw@example.com", "Hildegard Wolfenstein")
                accepted.append("own name accepted")
            except WeakPassword:
                pass

    def stranger() -> None:
        for _ in range(15):
            check_password("Hildegard Wolfenstein", "someone@example.com", "Bob Stranger")

    threads = [threading.Thread(target=f) for f in (own_name, stranger, own_name, stranger)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    assert accepted == []
