"""The installation secret and what is built on it: purpose-separated keys, encryption of secrets
at rest (TOTP secrets), random tokens stored only as hashes, keyed hashes.

The secret is PRIVATUNE_SECRET_KEY, or else a random one kept in PRIVATUNE_HOME/secret.key (made
on first use, mode 0600). The file holds text of the same form as the setting, so an operator who
adds a second API process copies the file's content into PRIVATUNE_SECRET_KEY on both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from resources.settings import get_settings

KEY_FILE_NAME = "secret.key"
# How long a process that lost the race to create the key file waits for the winner's write.
_KEY_FILE_WAIT_S = 5.0
# A shorter setting is likely a placeholder ("changeme"); HKDF cannot add entropy to it.
MIN_SECRET_KEY_LENGTH = 32


class SecretBoxError(ValueError):
    """A token cannot be decrypted with this installation's secret."""


def secret_key() -> bytes:
    """The installation secret: PRIVATUNE_SECRET_KEY, or the key file under PRIVATUNE_HOME
    (created on first use; processes that start together all end up with the one key)."""
    settings = get_settings()
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"PRIVATUNE_SECRET_KEY has {len(settings.secret_key)} characters; use at least "
                f"{MIN_SECRET_KEY_LENGTH} random ones, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return settings.secret_key.encode()
    return _key_file_secret(settings.home / KEY_FILE_NAME)


@lru_cache(maxsize=8)
def _key_file_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        # O_EXCL: exactly one process creates the file; 0600 from the start, never widened.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        # Made by an earlier start, or by a process starting at this moment: its key is the key.
        return _read_key_file(path, wait_s=_KEY_FILE_WAIT_S)
    with os.fdopen(fd, "w") as f:
        # One write of a short line: readers see nothing or all of it.
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key.encode()


def _read_key_file(path: Path, wait_s: float) -> bytes:
    """The key in the file; waits up to `wait_s` for a creator that has not written it yet."""
    deadline = time.monotonic() + wait_s
    while True:
        text = path.read_text()
        if text.endswith("\n") and text.strip():
            return text.strip().encode()
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{path} is empty or incomplete (a process was stopped while creating it). "
                "Nothing can have been encrypted with it: delete it and start again, or set "
                "PRIVATUNE_SECRET_KEY."
            )
        time.sleep(0.05)


def derive(purpose: str) -> bytes:
    """A 32-byte key for one purpose (HKDF-SHA256 of the installation secret): a key learnt or
    misused for one purpose says nothing about the others."""
    return _derive(secret_key(), purpose)


@lru_cache(maxsize=64)
def _derive(secret: bytes, purpose: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"privatune/{purpose}".encode()
    )
    return hkdf.derive(secret)


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive("fernet")))


def encrypt(plain: str) -> str:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) under the installation
    secret; the token is URL-safe text."""
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The text `encrypt` was given; SecretBoxError when the token was made under another secret
    or was altered."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretBoxError(
            "cannot decrypt: the value was encrypted under another secret key (did "
            "PRIVATUNE_SECRET_KEY or PRIVATUNE_HOME/secret.key change?) or was altered"
        ) from exc


def token_hash(plain: str) -> str:
    """SHA-256 hex of a token: what the database keeps. A plain hash is enough because the token
    is 256 random bits, beyond guessing, unlike a password."""
    return hashlib.sha256(plain.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A new token: (the URL-safe text to hand out once, its `token_hash` to store)."""
    plain = secrets.token_urlsafe(32)
    return plain, token_hash(plain)


def keyed_hash(purpose: str, value: str) -> str:
    """HMAC-SHA256 hex of `value` under the key for `purpose`: for values with little entropy
    (recovery codes, throttle keys made of e-mails and addresses) that a database reader must not
    be able to confirm by guessing."""
    key = derive(f"hmac/{purpose}")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
