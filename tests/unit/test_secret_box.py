from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import stat
import threading
import time
from pathlib import Path

import pytest

from resources import secret_box
from resources.secret_box import SecretBoxError
from resources.settings import get_settings

KEY = "k" * 20 + "0123456789abcdefghij"  # 40 characters


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh PRIVATUNE_HOME and no PRIVATUNE_SECRET_KEY: the key file is used."""
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.delenv("PRIVATUNE_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    return tmp_path


def _use_secret(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PRIVATUNE_SECRET_KEY", value)
    get_settings.cache_clear()


def test_the_setting_is_the_secret(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    _use_secret(monkeypatch, KEY)
    assert secret_box.secret_key() == KEY.encode()
    assert not (home / "secret.key").exists()


def test_a_short_setting_is_refused_with_advice(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    _use_secret(monkeypatch, "changeme")
    with pytest.raises(ValueError, match="has 8 characters; use at least 32"):
        secret_box.secret_key()


def test_without_the_setting_a_key_file_is_made_once_with_mode_0600(home: Path) -> None:
    key = secret_box.secret_key()
    path = home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.decode() + "\n"
    assert len(key) >= 43 and re.fullmatch(rb"[A-Za-z0-9_-]+", key)
    assert secret_box.secret_key() == key
    # The file's content works as PRIVATUNE_SECRET_KEY (how a second API process shares it).
    assert len(key) >= secret_box.MIN_SECRET_KEY_LENGTH


def test_an_existing_key_file_is_used_and_left_alone(home: Path) -> None:
    path = home / "secret.key"
    path.write_text("an-existing-key-made-by-an-earlier-start-0123\n")
    assert secret_box.secret_key() == b"an-existing-key-made-by-an-earlier-start-0123"
    assert path.read_text() == "an-existing-key-made-by-an-earlier-start-0123\n"


def test_a_process_that_loses_the_race_waits_for_the_winners_key(home: Path) -> None:
    path = home / "secret.key"
    path.touch(mode=0o600)  # the winner has created the file but not written it yet

    def winner_writes() -> None:
        time.sleep(0.3)
        path.write_text("the-winners-key-0123456789-0123456789-abcdef\n")

    writer = threading.Thread(target=winner_writes)
    writer.start()
    try:
        assert secret_box.secret_key() == b"the-winners-key-0123456789-0123456789-abcdef"
    finally:
        writer.join()


def _key_in_new_process(home: str, barrier, results) -> None:  # runs in a child process
    os.environ["PRIVATUNE_HOME"] = home
    os.environ.pop("PRIVATUNE_SECRET_KEY", None)
    from resources import secret_box as box
    from resources.settings import get_settings as settings

    settings.cache_clear()
    barrier.wait()
    results.put(box.secret_key())


def test_processes_starting_together_share_one_key(home: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_key_in_new_process, args=(str(home), barrier, results))
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    keys = {results.get(timeout=60) for _ in range(n)}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(keys) == 1
    assert secret_box.secret_key() in keys
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600


def test_a_key_file_left_empty_by_a_crash_is_reported(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    (home / "secret.key").touch()
    monkeypatch.setattr(secret_box, "_KEY_FILE_WAIT_S", 0.1)
    with pytest.raises(RuntimeError, match="empty or incomplete.*delete it"):
        secret_box.secret_key()


def test_encryption_round_trips_and_is_randomised(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    _use_secret(monkeypatch, KEY)
    plain = "JBSWY3DPEHPK3PXP — ünïcode too"
    first, second = secret_box.encrypt(plain), secret_box.encrypt(plain)
    assert first != second and plain not in first
    assert secret_box.decrypt(first) == plain == secret_box.decrypt(second)


def test_decrypting_under_another_secret_or_after_tampering_fails(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    _use_secret(monkeypatch, KEY)
    token = secret_box.encrypt("secret")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretBoxError, match="altered"):
        secret_box.decrypt(tampered)
    _use_secret(monkeypatch, KEY.upper())
    with pytest.raises(SecretBoxError, match="another secret key"):
        secret_box.decrypt(token)


def test_derived_keys_are_per_purpose_and_per_secret(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    _use_secret(monkeypatch, KEY)
    a, b = secret_box.derive("csrf"), secret_box.derive("fernet")
    assert len(a) == 32 and a != b and secret_box.derive("csrf") == a
    _use_secret(monkeypatch, KEY.upper())
    assert secret_box.derive("csrf") != a


def test_new_tokens_are_random_and_stored_as_their_sha256(home: Path) -> None:
    plain, stored = secret_box.new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", plain)
    assert stored == hashlib.sha256(plain.encode()).hexdigest() == secret_box.token_hash(plain)
    assert len({secret_box.new_token()[0] for _ in range(100)}) == 100


def test_keyed_hashes_depend_on_purpose_and_secret(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    _use_secret(monkeypatch, KEY)
    value = "alice@example.com"
    h = secret_box.keyed_hash("throttle", value)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert h == secret_box.keyed_hash("throttle", value)
    assert h != secret_box.keyed_hash("recovery-code", value)
    assert h != secret_box.keyed_hash("throttle", value + " ")
    assert h != hashlib.sha256(value.encode()).hexdigest()
    _use_secret(monkeypatch, KEY.upper())
    assert secret_box.keyed_hash("throttle", value) != h
