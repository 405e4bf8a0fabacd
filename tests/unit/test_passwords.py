from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import string
import time
from collections.abc import Iterator

import bcrypt
import pytest
from argon2 import PasswordHasher

from resources import passwords
from resources.passwords import (
    PRODUCTION_COST,
    TEST_COST,
    check_importable,
    dummy_verify,
    hash_password,
    identify,
    verify_password,
)

PASSWORD = "correct horse battery staple"


def _at_cost(cost: passwords.Argon2Cost) -> Iterator[None]:
    previous = passwords.current_cost()  # a suite may run at TEST_COST throughout
    passwords.set_cost(cost)
    yield
    passwords.set_cost(previous)


@pytest.fixture
def cheap_argon2() -> Iterator[None]:
    yield from _at_cost(TEST_COST)


@pytest.fixture
def production_argon2() -> Iterator[None]:
    yield from _at_cost(PRODUCTION_COST)


def _is_current_argon2id(stored: str) -> bool:
    cost = passwords.current_cost()
    return stored.startswith(
        f"$argon2id$v=19$m={cost.memory_kib},t={cost.time_cost},p={cost.parallelism}$"
    )


# --- argon2id ---------------------------------------------------------------------------------


def test_new_hashes_are_argon2id_at_the_production_cost(production_argon2: None) -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert identify(stored) == "argon2id"
    assert check_importable(stored) == "argon2id"
    assert verify_password(PASSWORD, stored) == (True, None)
    assert verify_password(PASSWORD + "!", stored) == (False, None)


def test_hashes_are_salted(cheap_argon2: None) -> None:
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_a_hash_of_another_cost_is_replaced_at_the_current_cost(cheap_argon2: None) -> None:
    stronger = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2).hash(PASSWORD)
    ok, replacement = verify_password(PASSWORD, stronger)
    assert ok and replacement is not None and _is_current_argon2id(replacement)
    assert verify_password(PASSWORD, replacement) == (True, None)
    assert verify_password("wrong password", stronger) == (False, None)


def test_passwords_are_nfkc_normalised(cheap_argon2: None) -> None:
    # Full-width letters (an East Asian input method) are the same password as ASCII ones.
    stored = hash_password("ｐａｓｓｗｏｒｄ ｆｏｒ ｙｏｕ")
    assert verify_password("password for you", stored) == (True, None)
    assert verify_password("password for yoU", stored) == (False, None)


def test_an_imported_argon2id_hash_of_an_unnormalised_password_verifies(cheap_argon2: None) -> None:
    typed = "ﬁsh and chips"  # the "ﬁ" ligature; NFKC makes it "fi"
    elsewhere = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(typed)
    ok, replacement = verify_password(typed, elsewhere)
    assert ok and replacement is not None
    assert verify_password(typed, replacement) == (True, None)
    assert verify_password("fish and chips", replacement) == (True, None)


# --- bcrypt -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
def test_bcrypt_hashes_verify_and_are_replaced(cheap_argon2: None, prefix: bytes) -> None:
    stored = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix)).decode()
    assert identify(stored) == "bcrypt"
    assert check_importable(stored) == "bcrypt"
    assert verify_password("correct horse battery stapler", stored) == (False, None)
    ok, replacement = verify_password(PASSWORD, stored)
    assert ok and replacement is not None and _is_current_argon2id(replacement)
    assert verify_password(PASSWORD, replacement) == (True, None)


@pytest.mark.parametrize(
    ("password", "stored"),
    [
        # PHP manual, password_verify() example ($2y$ is PHP's name for $2b$).
        ("rasmuslerdorf", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"),
        # Openwall crypt_blowfish test vectors.
        ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ],
)
def test_published_bcrypt_vectors_verify(cheap_argon2: None, password: str, stored: str) -> None:
    assert identify(stored) == "bcrypt"
    assert verify_password(password, stored)[0] is True
    assert verify_password(password.upper() + "x", stored) == (False, None)


def test_bcrypt_reads_the_first_72_bytes_like_the_systems_that_made_the_hashes(
    cheap_argon2: None,
) -> None:
    long_password = "ünïcødé passphrase " * 6  # 138 bytes
    made_elsewhere = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    ok, replacement = verify_password(long_password, made_elsewhere)
    assert ok and replacement is not None
    # The replacement covers the whole password, not just what bcrypt read.
    assert verify_password(long_password, replacement) == (True, None)
    assert verify_password(long_password[:60], replacement) == (False, None)


# --- PBKDF2-SHA256 ----------------------------------------------------------------------------


def _django(password: str, salt: str, iterations: int) -> str:
    # django.contrib.auth.hashers.PBKDF2PasswordHasher.encode
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def _ab64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


def _passlib(password: str, salt: bytes, rounds: int) -> str:
    # passlib.handlers.pbkdf2.pbkdf2_sha256
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return f"$pbkdf2-sha256${rounds}${_ab64(salt)}${_ab64(digest)}"


def _werkzeug(password: str, salt: str, iterations: int) -> str:
    # werkzeug.security.generate_password_hash(method="pbkdf2:sha256:<iterations>")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2:sha256:{iterations}${salt}${digest.hex()}"


def _random_salt() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))


@pytest.mark.parametrize(
    "make",
    [
        lambda pw: _django(pw, _random_salt(), 1000),
        lambda pw: _passlib(pw, secrets.token_bytes(16), 1000),
        lambda pw: _werkzeug(pw, _random_salt(), 1000),
    ],
    ids=["django", "passlib", "werkzeug"],
)
@pytest.mark.parametrize("password", [PASSWORD, "pässwörd mit Umlauten", "パスワードです"])
def test_pbkdf2_hashes_verify_and_are_replaced(cheap_argon2: None, make, password: str) -> None:
    stored = make(password)
    assert identify(stored) == "pbkdf2_sha256"
    assert check_importable(stored) == "pbkdf2_sha256"
    assert verify_password(password + " ", stored) == (False, None)
    assert verify_password(password[:-1], stored) == (False, None)
    ok, replacement = verify_password(password, stored)
    assert ok and replacement is not None and _is_current_argon2id(replacement)
    assert verify_password(password, replacement) == (True, None)


@pytest.mark.parametrize(
    ("password", "stored"),
    [
        # Django 4.1, tests/auth_tests/test_hashers.py (TestUtilsHashPass.test_pbkdf2).
        ("lètmein", "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="),
        # passlib 1.7, passlib/tests/test_handlers_pbkdf2.py (pbkdf2_sha256_test).
        (
            "password",
            "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
        ),
        (
            "\u0399\u03c9\u03b1\u03bd\u03bd\u03b7\u03c2",
            "$pbkdf2-sha256$1212$3SABFJGDtyhrQMVt1uABPw$WyaUoqCLgvz97s523nF4iuOqZNbp5Nt8do/cuaa7AiI",
        ),
    ],
)
def test_published_pbkdf2_vectors_verify(cheap_argon2: None, password: str, stored: str) -> None:
    ok, replacement = verify_password(password, stored)
    assert ok and replacement is not None
    assert verify_password(password + "z", stored) == (False, None)


def test_the_django_vector_is_what_hashlib_derives() -> None:
    # The published vector, derived here the way Django derives it: the format is understood.
    assert (
        _django("lètmein", "seasalt", 390000)
        == "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
    )


def test_werkzeugs_own_hashes_verify(cheap_argon2: None) -> None:
    security = pytest.importorskip("werkzeug.security")
    stored = security.generate_password_hash(PASSWORD, method="pbkdf2:sha256:2000")
    assert identify(stored) == "pbkdf2_sha256"
    assert verify_password(PASSWORD, stored)[0] is True
    assert verify_password(PASSWORD[:-1], stored) == (False, None)


# --- identify / check_importable --------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "kind"),
    [
        ("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "argon2id"),
        ("$2b$12$" + "a" * 53, "bcrypt"),
        ("pbkdf2_sha256$870000$abc$" + "A" * 43 + "=", "pbkdf2_sha256"),
        ("$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", None),
        ("$2x$12$" + "a" * 53, None),
        ("md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3", None),
        ("scrypt:32768:8:1$salt$" + "ab" * 64, None),
        ("5f4dcc3b5aa765d61d8327deb882cf99", None),
        ("", None),
    ],
)
def test_identify(stored: str, kind: str | None) -> None:
    assert identify(stored) == kind


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        ("", "empty"),
        (" $2b$12$" + "a" * 53, "whitespace"),
        ("$2b$12$" + "a" * 53 + "\n", "whitespace"),
        ("x" * 600, "longer than 512"),
        ("md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3", "unrecognised password hash format"),
        ("scrypt:32768:8:1$salt$" + "ab" * 64, "unrecognised"),
        ("$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "argon2i"),
        (
            "$argon2id$v=19$m=4194304,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
            "m=262144",
        ),
        ("$2x$12$" + "a" * 53, "known-broken"),
        ("$2b$31$" + "a" * 53, "cost 31"),
        ("$2b$12$tooshort", "should be 60 characters"),
        ("pbkdf2_sha256$2000000000$salt$" + "A" * 43 + "=", "iterations"),
        ("pbkdf2_sha256$1000$salt$QUJD", "3-byte digest"),
        ("pbkdf2_sha256$1000$salt$!!!", "malformed"),
        ("$pbkdf2-sha256$1000$c2FsdA$" + "A" * 42, "31-byte digest"),
        ("pbkdf2:sha256:1000$salt$abc", "malformed"),
        ("pbkdf2:sha256$salt$" + "ab" * 32, "malformed"),
    ],
)
def test_check_importable_says_what_cannot_be_verified(stored: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_importable(stored)


def test_an_unverifiable_stored_hash_never_matches_and_is_logged(
    cheap_argon2: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="privatune.auth")
    assert verify_password(PASSWORD, "$2b$31$" + "a" * 53) == (False, None)
    assert verify_password(PASSWORD, PASSWORD) == (False, None)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("cannot be verified" in m for m in messages)
    assert not any(PASSWORD in m for m in messages)


def test_no_password_set_never_matches_and_is_not_an_error(
    cheap_argon2: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="privatune.auth")
    assert verify_password("", "") == (False, None)
    assert verify_password(PASSWORD, "") == (False, None)
    assert caplog.records == []


# --- timing -----------------------------------------------------------------------------------


def _fastest(action, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def test_dummy_verify_costs_what_a_wrong_password_costs(production_argon2: None) -> None:
    stored = hash_password(PASSWORD)
    dummy_verify("warm up: the dummy hash is made on the first call")
    wrong = _fastest(lambda: verify_password("not the password", stored))
    dummy = _fastest(lambda: dummy_verify("not the password"))
    assert wrong > 0.005  # the production cost really is being paid
    assert 0.5 < dummy / wrong < 2.0, (dummy, wrong)
