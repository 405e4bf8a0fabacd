"""Password hashing: argon2id for every new hash; bcrypt and PBKDF2-SHA256 hashes imported from
other systems verify, and are replaced by argon2id at the person's next successful sign-in.

Argon2id cost (`PRODUCTION_COST`): t=3 passes over m=64 MiB with p=4 lanes, RFC 9106 section 4's
second recommended option (for hosts that cannot spend 2 GiB per hash) and argon2-cffi's default,
spelled out here so that a library upgrade cannot change it silently. Measured on the 2-core
development machine: about 160 ms per hash or verification, 250-400 ms while its cores are busy. Raising a parameter makes every older hash `outdated`: it is
replaced at the next successful sign-in.

Passwords are NFKC-normalised before argon2id hashing (NIST SP 800-63B), so the same password typed
on another keyboard or input method still matches; legacy hashes verify the password as given, the
way the system that made them hashed it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pwdlib.exceptions import HashVerificationError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

logger = logging.getLogger("privatune.auth")

HashKind = Literal["argon2id", "bcrypt", "pbkdf2_sha256"]


@dataclass(frozen=True)
class Argon2Cost:
    """Argon2id parameters: passes, memory in KiB, lanes."""

    time_cost: int
    memory_kib: int
    parallelism: int


PRODUCTION_COST = Argon2Cost(time_cost=3, memory_kib=64 * 1024, parallelism=4)
# The cheapest cost argon2 accepts; for test suites only (see `set_cost`).
TEST_COST = Argon2Cost(time_cost=1, memory_kib=8, parallelism=1)

_cost = PRODUCTION_COST

# users.password_hash is VARCHAR(512).
MAX_HASH_LENGTH = 512
# Ceilings for imported hashes: a hash is verified on every sign-in attempt until it is replaced,
# so an absurd cost would let anyone with a wrong password tie up a worker (or its memory).
MAX_ARGON2_MEMORY_KIB = 256 * 1024
MAX_ARGON2_TIME_COST = 10
MAX_ARGON2_PARALLELISM = 16
MAX_BCRYPT_COST = 16  # 2**16 rounds: about 4 s here
MAX_PBKDF2_ITERATIONS = 5_000_000  # about 1.2 s here; Django 6.0 uses 1,200,000
# bcrypt reads at most 72 bytes of a password; the systems that made these hashes ignored the rest
# (bcrypt >= 5 raises instead), so verification truncates the same way.
BCRYPT_MAX_PASSWORD_BYTES = 72

_ARGON2 = re.compile(
    r"\$(?P<variant>argon2(?:id|i|d))\$(?:v=(?P<version>\d+)\$)?"
    r"m=(?P<m>\d{1,10}),t=(?P<t>\d{1,10}),p=(?P<p>\d{1,10})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
)
_BCRYPT = re.compile(r"\$(?P<prefix>2[abyx])\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}")
_DJANGO = re.compile(
    r"pbkdf2_sha256\$(?P<n>\d{1,10})\$(?P<salt>[^$]*)\$(?P<digest>[A-Za-z0-9+/=]+)"
)
_PASSLIB = re.compile(
    r"\$pbkdf2-sha256\$(?P<n>\d{1,10})\$(?P<salt>[./A-Za-z0-9]*)\$(?P<digest>[./A-Za-z0-9]+)"
)
_WERKZEUG = re.compile(r"pbkdf2:sha256:(?P<n>\d{1,10})\$(?P<salt>[^$]*)\$(?P<digest>[0-9a-f]+)")


def set_cost(cost: Argon2Cost) -> None:
    """Change the argon2id cost of new hashes (and of `dummy_verify`). For test suites only:
    `set_cost(TEST_COST)` makes each hash take microseconds instead of ~160 ms."""
    global _cost
    _cost = cost


def current_cost() -> Argon2Cost:
    return _cost


@lru_cache(maxsize=4)
def _argon2(cost: Argon2Cost) -> Argon2Hasher:
    return Argon2Hasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
    )


def _normalized(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) of the NFKC-normalised password, at the current cost."""
    return _argon2(_cost).hash(_normalized(password))


def identify(stored_hash: str) -> HashKind | None:
    """Which kind of hash this looks like: "argon2id", "bcrypt" ($2a$, $2b$, $2y$),
    "pbkdf2_sha256" (Django, passlib or Werkzeug format); None for anything else. Says nothing
    about whether its parameters are acceptable: `check_importable` does."""
    m = _ARGON2.fullmatch(stored_hash)
    if m:
        return "argon2id" if m["variant"] == "argon2id" else None
    m = _BCRYPT.fullmatch(stored_hash)
    if m:
        return "bcrypt" if m["prefix"] != "2x" else None
    if any(p.fullmatch(stored_hash) for p in (_DJANGO, _PASSLIB, _WERKZEUG)):
        return "pbkdf2_sha256"
    return None


@dataclass(frozen=True)
class _Pbkdf2:
    iterations: int
    salt: bytes
    digest: bytes


def _ab64decode(text: str) -> bytes:
    # passlib's "adapted base64": standard alphabet with "." for "+", no padding.
    return base64.b64decode(text.replace(".", "+") + "=" * (-len(text) % 4), validate=True)


def _parse_pbkdf2(stored_hash: str) -> _Pbkdf2:
    try:
        if m := _DJANGO.fullmatch(stored_hash):
            digest = base64.b64decode(m["digest"], validate=True)
            salt = m["salt"].encode()
        elif m := _PASSLIB.fullmatch(stored_hash):
            digest = _ab64decode(m["digest"])
            salt = _ab64decode(m["salt"])
        elif m := _WERKZEUG.fullmatch(stored_hash):
            digest = bytes.fromhex(m["digest"])
            salt = m["salt"].encode()
        else:  # pragma: no cover - identify() said pbkdf2_sha256
            raise ValueError("not a PBKDF2-SHA256 hash")
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the PBKDF2-SHA256 hash is malformed ({exc})") from exc
    iterations = int(m["n"])
    if len(digest) != 32:
        raise ValueError(
            f"the PBKDF2-SHA256 hash holds a {len(digest)}-byte digest; SHA-256 makes 32 bytes"
        )
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise ValueError(
            f"the PBKDF2-SHA256 hash uses {iterations} iterations; "
            f"1 to {MAX_PBKDF2_ITERATIONS} are accepted"
        )
    return _Pbkdf2(iterations=iterations, salt=salt, digest=digest)


def check_importable(stored_hash: str) -> HashKind:
    """The kind of an imported hash that `verify_password` can verify; ValueError, with what is
    wrong, for anything else (an operator importing users with their old hashes sees it)."""
    if not stored_hash:
        raise ValueError("the password hash is empty")
    if stored_hash != stored_hash.strip():
        raise ValueError("the password hash has leading or trailing whitespace; remove it")
    if len(stored_hash) > MAX_HASH_LENGTH:
        raise ValueError(f"the password hash is longer than {MAX_HASH_LENGTH} characters")
    kind = identify(stored_hash)
    if kind == "argon2id":
        m = _ARGON2.fullmatch(stored_hash)
        assert m is not None
        memory, time_cost, lanes = int(m["m"]), int(m["t"]), int(m["p"])
        if memory > MAX_ARGON2_MEMORY_KIB or time_cost > MAX_ARGON2_TIME_COST:
            raise ValueError(
                f"the argon2id hash costs m={memory} KiB, t={time_cost}; at most "
                f"m={MAX_ARGON2_MEMORY_KIB}, t={MAX_ARGON2_TIME_COST} are accepted"
            )
        if not 1 <= lanes <= MAX_ARGON2_PARALLELISM:
            raise ValueError(
                f"the argon2id hash uses p={lanes}; 1 to {MAX_ARGON2_PARALLELISM} are accepted"
            )
    elif kind == "bcrypt":
        m = _BCRYPT.fullmatch(stored_hash)
        assert m is not None
        cost = int(m["cost"])
        if not 4 <= cost <= MAX_BCRYPT_COST:
            raise ValueError(
                f"the bcrypt hash has cost {cost}; 4 to {MAX_BCRYPT_COST} are accepted"
            )
    elif kind == "pbkdf2_sha256":
        _parse_pbkdf2(stored_hash)
    else:
        raise ValueError(_unsupported_reason(stored_hash))
    return kind


def _unsupported_reason(stored_hash: str) -> str:
    accepted = (
        "accepted: argon2id ($argon2id$...), bcrypt ($2a$, $2b$, $2y$), PBKDF2-SHA256 as "
        "Django (pbkdf2_sha256$...), passlib ($pbkdf2-sha256$...) or Werkzeug "
        "(pbkdf2:sha256:<iterations>$...) writes it"
    )
    if m := _ARGON2.fullmatch(stored_hash):
        return f"{m['variant']} hashes are not supported, only argon2id; {accepted}"
    if stored_hash.startswith("$2x$"):
        return f"$2x$ bcrypt hashes (made by a known-broken implementation) are not supported; {accepted}"
    if stored_hash.startswith(("pbkdf2_sha256$", "$pbkdf2-sha256$", "pbkdf2:sha256")):
        return f"the PBKDF2-SHA256 hash is malformed; {accepted}"
    if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
        return f"the bcrypt hash is malformed (it should be 60 characters); {accepted}"
    return f"unrecognised password hash format; {accepted}"


def verify_password(password: str, stored_hash: str) -> tuple[bool, str | None]:
    """Whether `password` matches `stored_hash`, and a replacement argon2id hash to store when it
    matches a legacy (bcrypt, PBKDF2) hash or an argon2id hash of another cost. An empty hash (no
    password set) or one that cannot be verified (malformed, unsupported, over the import
    ceilings; logged) never matches, and costs the same time as a real verification."""
    if not stored_hash:
        dummy_verify(password)
        return False, None
    try:
        kind = check_importable(stored_hash)
    except ValueError as exc:
        logger.warning("a stored password hash cannot be verified: %s", exc)
        dummy_verify(password)
        return False, None
    try:
        if kind == "argon2id":
            return _verify_argon2id(password, stored_hash)
        if kind == "bcrypt":
            ok = _verify_bcrypt(password, stored_hash)
        else:
            ok = _verify_pbkdf2(password, _parse_pbkdf2(stored_hash))
    except HashVerificationError as exc:
        logger.warning("a stored %s password hash cannot be verified: %r", kind, exc)
        return False, None
    return ok, hash_password(password) if ok else None


def _verify_argon2id(password: str, stored_hash: str) -> tuple[bool, str | None]:
    hasher = _argon2(_cost)
    normalized = _normalized(password)
    if hasher.verify(normalized, stored_hash):
        return True, hash_password(password) if hasher.check_needs_rehash(stored_hash) else None
    # An argon2id hash imported from a system that did not normalise: the password as typed.
    if normalized != password and hasher.verify(password, stored_hash):
        return True, hash_password(password)
    return False, None


def _verify_bcrypt(password: str, stored_hash: str) -> bool:
    raw = password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]
    return BcryptHasher().verify(raw, stored_hash)


def _verify_pbkdf2(password: str, parsed: _Pbkdf2) -> bool:
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), parsed.salt, parsed.iterations)
    return hmac.compare_digest(derived, parsed.digest)


@lru_cache(maxsize=4)
def _dummy_hash(cost: Argon2Cost) -> str:
    return _argon2(cost).hash("privatune dummy password")


def dummy_verify(password: str) -> None:
    """Spend what verifying an argon2id hash of the current cost spends, and learn nothing: for a
    sign-in with an unknown e-mail, so that it takes as long as a wrong password."""
    _argon2(_cost).verify(_normalized(password), _dummy_hash(_cost))
