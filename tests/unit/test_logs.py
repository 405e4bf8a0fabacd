"""JSON logs: one object per line with the request context, and no secrets in any field."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from resources import request_context
from resources.logs import MASK, OMITTED, configure_logging, get_logger, mask_text
from resources.settings import get_settings

API_KEY = "ptk_" + "Zq3-x_9" * 5
OPERATOR_TOKEN = "op-token-4f9a1c2e7b"


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setenv("PRIVATUNE_ADMIN_TOKEN", OPERATOR_TOKEN)
    get_settings.cache_clear()
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    yield buffer
    configure_logging("INFO", stream=io.StringIO())  # later tests' lines go nowhere near ours


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_structlog_and_stdlib_lines_are_json_with_the_request_context(lines):
    with request_context.bound(
        request_id="req-0001-abcd",
        tenant="acme",
        actor="user:jo@acme.test",
        client_address="10.0.0.7",
    ):
        get_logger("privatune.test").info("stage_finished", stage="raw_documents", seconds=1.5)
        logging.getLogger("uvicorn.error").warning("worker %s restarted", 3)
    get_logger("privatune.test").info("outside")
    ours, theirs, outside = records(lines)
    assert ours["event"] == "stage_finished" and ours["logger"] == "privatune.test"
    assert ours["level"] == "info" and ours["stage"] == "raw_documents" and ours["seconds"] == 1.5
    assert (
        datetime.fromisoformat(ours["time"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    )
    for line in (ours, theirs):
        assert line["request_id"] == "req-0001-abcd" and line["tenant"] == "acme"
        assert line["actor"] == "user:jo@acme.test" and line["client_address"] == "10.0.0.7"
    assert theirs["event"] == "worker 3 restarted" and theirs["level"] == "warning"
    assert theirs["logger"] == "uvicorn.error"
    assert "request_id" not in outside and "tenant" not in outside


def test_level_filters_and_configuring_again_keeps_one_handler(lines):
    configure_logging("WARNING")  # same stream, new level
    configure_logging()
    get_logger("privatune.test").info("hidden")
    get_logger("privatune.test").warning("shown")
    assert [r["event"] for r in records(lines)] == ["shown"]
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "privatune-json"]
    assert len(ours) == 1


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (f"rejected key {API_KEY} for acme", API_KEY),
        ("Authorization: Bearer abc.DEF-ghi_123", "abc.DEF-ghi_123"),
        (f"operator called with {OPERATOR_TOKEN}", OPERATOR_TOKEN),
        ("GET /v1/auth/reset?token=rst-88a1b2c3&next=/ 200", "rst-88a1b2c3"),
        ("connect postgresql://app:pgpass-771@db:5432/privatune", "pgpass-771"),
        ("{'password': 'hunter2-horse', 'email': 'jo@acme.test'}", "hunter2-horse"),
    ],
)
def test_secrets_inside_messages_are_masked(lines, message, secret):
    get_logger("privatune.test").info(message)
    logging.getLogger("litestar").info(message)  # a stdlib logger is masked the same way
    for line in records(lines):
        assert secret not in json.dumps(line)
        assert MASK in line["event"]


def test_secret_fields_are_masked_and_bodies_omitted(lines):
    get_logger("privatune.test").info(
        "login",
        password="correct horse battery",
        new_password="another-one-1",
        totp="123456",
        code="654321",
        recovery_codes=["aaaa-bbbb", "cccc-dddd"],
        csrf_token="c5rf",
        cookie="privatune_session=s3ss10n",
        headers={"authorization": f"Bearer {API_KEY}", "accept": "application/json"},
        body=b"raw bytes",
        text="the document's text",
        error_code="invalid_credentials",
        prompt_tokens=42,
        key_prefix="ptk_ab12cd34",
    )
    line = records(lines)[0]
    for key in (
        "password",
        "new_password",
        "totp",
        "code",
        "recovery_codes",
        "csrf_token",
        "cookie",
    ):
        assert line[key] == MASK, key
    assert line["headers"] == {"authorization": MASK, "accept": "application/json"}
    assert line["body"] == OMITTED and line["text"] == OMITTED
    assert line["error_code"] == "invalid_credentials" and line["prompt_tokens"] == 42
    assert line["key_prefix"] == "ptk_ab12cd34"  # a key's prefix names it; it is not the key
    for secret in ("correct horse", "another-one-1", "123456", "654321", "aaaa-bbbb", "s3ss10n"):
        assert secret not in json.dumps(line)


def test_exception_traceback_is_a_masked_field(lines):
    try:
        raise ValueError(f"cannot use {API_KEY}")
    except ValueError:
        get_logger("privatune.test").exception("failed")
        logging.getLogger("sqlalchemy.pool").exception("pool failed")
    for line in records(lines):
        assert line["level"] == "error"
        assert "Traceback (most recent call last)" in line["exception"]
        assert "ValueError: cannot use ptk_" + MASK in line["exception"]
        assert API_KEY not in line["exception"]


def test_mail_link_is_the_one_allowed_token(lines):
    link = "https://privatune.example/reset?token=rst-1234567890"
    get_logger("privatune.mail").info("mail_not_sent", link=link, to="jo@acme.test")
    get_logger("privatune.other").info("leak", link=link)
    mailed, other = records(lines)
    assert mailed["link"] == link
    assert "rst-1234567890" not in other["link"]


def test_uvicorn_access_log_is_off(lines):
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /reset?token=abc HTTP/1.1" 200')
    assert records(lines) == []


def test_mask_text_keeps_the_actor_of_a_key():
    assert mask_text("api_key:ptk_ab12cd34 did it") == "api_key:ptk_ab12cd34 did it"
    assert mask_text("prompt_tokens: 12") == "prompt_tokens: 12"
