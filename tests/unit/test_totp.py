from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from resources import totp
from resources.settings import get_settings

# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", as base32.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
NOW = 1_111_111_111.0  # RFC 6238's third test time; step 37037037
STEP = int(NOW // 30)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def test_the_rfc_6238_test_vector() -> None:
    # RFC 6238 appendix B gives 8-digit 050471 for T=1111111111; 6 digits are its last six.
    assert totp.verify(RFC_SECRET, "050471", None, now=NOW) == STEP
    assert totp.verify(RFC_SECRET, "050472", None, now=NOW) is None


def test_new_secrets_are_160_bit_base32() -> None:
    secret = totp.new_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert secret != totp.new_secret()


def test_provisioning_uri_names_the_account_and_issuer() -> None:
    uri = urlparse(totp.provisioning_uri(RFC_SECRET, "alice@example.com"))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/privatune:alice@example.com"
    query = parse_qs(uri.query)
    assert query["secret"] == [RFC_SECRET] and query["issuer"] == ["privatune"]
    other = totp.provisioning_uri(RFC_SECRET, "alice@example.com", issuer="ACME privatune")
    assert parse_qs(urlparse(other).query)["issuer"] == ["ACME privatune"]


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_current_step_and_one_either_side_are_accepted(offset: int) -> None:
    code = code_at(RFC_SECRET, STEP + offset)
    assert totp.verify(RFC_SECRET, code, None, now=NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_steps_further_away_are_refused(offset: int) -> None:
    assert totp.verify(RFC_SECRET, code_at(RFC_SECRET, STEP + offset), None, now=NOW) is None


def test_a_code_cannot_be_replayed() -> None:
    code = code_at(RFC_SECRET, STEP)
    used = totp.verify(RFC_SECRET, code, None, now=NOW)
    assert used == STEP
    assert totp.verify(RFC_SECRET, code, used, now=NOW) is None
    assert totp.verify(RFC_SECRET, code, used, now=NOW + 25) is None  # still in the window
    # An older code, still inside the drift window, is refused after a newer one was used.
    assert totp.verify(RFC_SECRET, code_at(RFC_SECRET, STEP - 1), used, now=NOW) is None
    # The next step's code works.
    assert totp.verify(RFC_SECRET, code_at(RFC_SECRET, STEP + 1), used, now=NOW + 30) == STEP + 1


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: f"{c[:3]} {c[3:]}",
        lambda c: f" {c}\n",
        lambda c: c.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    ],
    ids=["grouped", "padded", "full-width"],
)
def test_codes_as_people_type_them(typed) -> None:
    code = code_at(RFC_SECRET, STEP)
    assert totp.verify(RFC_SECRET, typed(code), None, now=NOW) == STEP


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "٠٥٠٤٧١"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert totp.verify(RFC_SECRET, bad, None, now=NOW) is None


def test_another_secrets_code_is_refused() -> None:
    other = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert totp.verify(other, code_at(RFC_SECRET, STEP), None, now=NOW) is None
    assert totp.verify(other, code_at(other, STEP), None, now=NOW) == STEP


def test_now_defaults_to_the_clock() -> None:
    secret = totp.new_secret()
    assert totp.verify(secret, pyotp.TOTP(secret).now(), None) is not None


# --- recovery codes ---------------------------------------------------------------------------


def test_recovery_codes_have_the_format_and_entropy() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    alphabet = totp.RECOVERY_ALPHABET
    assert len(set(alphabet)) == 32 and not set("ilou") & set(alphabet)
    assert 10 * math.log2(len(alphabet)) >= 50
    for code in codes:
        assert re.fullmatch(rf"[{alphabet}]{{5}}-[{alphabet}]{{5}}", code)
    assert len(totp.new_recovery_codes(3)) == 3


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_SECRET_KEY", "s" * 40)
    get_settings.cache_clear()


def test_recovery_code_hashes_forgive_case_dashes_spaces_and_lookalikes(secret_key: None) -> None:
    stored = totp.recovery_code_hash("7gq20-x1d4k")
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    for typed in ["7GQ20-X1D4K", "7gq20x1d4k", " 7gq20 x1d4k ", "7gq2o-xld4k", "7GQ2O-XID4K"]:
        assert totp.recovery_code_hash(typed) == stored, typed
    assert totp.recovery_code_hash("7gq20-x1d4m") != stored


def test_recovery_code_hashes_are_keyed(secret_key: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = totp.recovery_code_hash("7gq20-x1d4k")
    monkeypatch.setenv("PRIVATUNE_SECRET_KEY", "t" * 40)
    get_settings.cache_clear()
    assert totp.recovery_code_hash("7gq20-x1d4k") != stored
