"""The second factor: TOTP (RFC 6238: 6 digits, 30-second steps, SHA-1, what every authenticator
app speaks) and single-use recovery codes."""

from __future__ import annotations

import hmac
import re
import secrets
import time
import unicodedata

import pyotp

from resources import secret_box

STEP_S = 30
# One step either side: a phone clock a little off, or a code typed as it rolled over.
ALLOWED_DRIFT_STEPS = 1
# Crockford's base32 in lower case: no i, l, o or u, so nothing reads as another character.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_GROUP = 5  # two groups of 5 characters: 10 x 5 = 50 bits per code
_CODE = re.compile(r"[0-9]{6}")
# What people type for the letters the alphabet leaves out.
_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})
_SEPARATORS = re.compile(r"[\s-]+")


def new_secret() -> str:
    """A new TOTP secret: 32 base32 characters (160 bits, RFC 4226's recommended length)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str = "privatune") -> str:
    """The otpauth:// URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=email, issuer_name=issuer)


def verify(
    secret: str, code: str, last_used_step: int | None, now: float | None = None
) -> int | None:
    """The time step `code` is valid for (the current one or one either side), to be stored as
    the new `last_used_step`; None when it is wrong, or when its step is not after
    `last_used_step` (a code seen once, or an older one, must not work again)."""
    # NFKC: an input method may send full-width digits.
    code = _SEPARATORS.sub("", unicodedata.normalize("NFKC", code))
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    current = totp.timecode(time.time() if now is None else now)
    accepted = None
    for step in range(current - ALLOWED_DRIFT_STEPS, current + ALLOWED_DRIFT_STEPS + 1):
        if hmac.compare_digest(code, totp.generate_otp(step)) and (
            last_used_step is None or step > last_used_step
        ):
            accepted = step
    return accepted


def new_recovery_codes(n: int = 10) -> list[str]:
    """`n` recovery codes like `7gq2m-x0d4k`, to show once; store their `recovery_code_hash`."""
    return [
        "-".join(
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP))
            for _ in range(2)
        )
        for _ in range(n)
    ]


def normalize_recovery_code(code: str) -> str:
    """The code as generated minus its dash: lower case, separators dropped, o/i/l read as 0/1/1."""
    text = unicodedata.normalize("NFKC", code)
    return _SEPARATORS.sub("", text).lower().translate(_LOOKALIKES)


def recovery_code_hash(code: str) -> str:
    """The stored form of a recovery code: a keyed hash (50-bit codes could be brute-forced from a
    plain hash by whoever reads the database)."""
    return secret_box.keyed_hash("recovery-code", normalize_recovery_code(code))
