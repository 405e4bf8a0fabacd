"""JSON logs: one object per line on stderr, from our structlog loggers and from every stdlib
logger (litestar, uvicorn, sqlalchemy, Dagster's libraries) alike.

Each line has `time` (ISO 8601, UTC), `level`, `logger`, `event` and, when set, the request
context (`request_id`, `tenant`, `actor`, `client_address`: resources/request_context.py).
Secrets never reach the output: values under secret-looking keys are masked, API keys
(`ptk_...`), bearer credentials, passwords in URLs and query strings, and the configured
secrets (operator token, secret key, S3 and SMTP passwords) are masked inside any string, and
bodies (request, response, document text, chat messages) are omitted. Exceptions come as an
`exception` field (the traceback, masked the same way).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import IO, Any

import structlog

from resources import request_context

MASK = "[redacted]"
OMITTED = "[omitted]"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Keys whose values are secrets wherever they appear (matched inside the key, case-insensitive).
_SECRET_KEY = re.compile(
    r"passw|passphrase|secret|token|api_?key|authori[sz]ation|cookie|totp|otp_?code|recovery"
    r"|key_hash|csrf|credential|private_key",
    re.IGNORECASE,
)
# Keys that are secrets only when they are the whole key (`error_code` is not a secret).
_SECRET_EXACT = frozenset({"code", "otp", "pin", "mfa", "session", "x_api_key"})
# Bodies and free text a tenant sent or owns: never logged, whatever the logger.
_OMIT = frozenset(
    {
        "body",
        "request_body",
        "response_body",
        "content",
        "text",
        "document_text",
        "messages",
        "prompt",
        "completion",
        "answer",
        "question",
        "files",
    }
)
# The only place a secret-bearing link is allowed: the documented mail fallback (no SMTP).
_ALLOWED = frozenset({("privatune.mail", "link")})

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ptk_[A-Za-z0-9_-]{20,}"), "ptk_" + MASK),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + MASK),
    # user:password@ in URLs (database and SMTP URLs)
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]+):[^@\s/]+@", re.IGNORECASE), r"\1:" + MASK + "@"),
    # key=value, 'key': 'value' and "Key: value" pairs in query strings, reprs and messages
    # (not `api_key:<prefix>`, the actor of a request made with a key)
    (
        re.compile(
            r"""(?i)\b((?:pass(?:word|wd|phrase)?|secret|[a-z_]*token|api_?key|csrf[a-z_]*"""
            r"""|(?:totp|otp|mfa|recovery|reset|verification)_?codes?)"""
            r"""(?:\s*=\s*|["']\s*[:=]\s*|:\s+)["']?)[^"'&\s,;}]+"""
        ),
        r"\1" + MASK,
    ),
)

_extra_secrets: set[str] = set()
_handler: logging.Handler | None = None
_level: str | None = None
_structlog_ready = False


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears in a log line (a key generated at run time)."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def _configured_secrets() -> tuple[str, ...]:
    from resources.settings import get_settings

    try:
        s = get_settings()
        found = [s.admin_token, s.secret_key, s.s3_secret_key, s.smtp_password]
    except Exception:  # a bad setting must not stop a log line
        found = []
    values = {v for v in found if v and len(v) >= 6} | _extra_secrets
    # longest first: a secret containing another is masked whole
    return tuple(sorted(values, key=len, reverse=True))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with API keys, bearer credentials, URL and query-string passwords and the given
    literal secrets masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_key(key: str, value: Any) -> bool:
    normal = key.lower().replace("-", "_")
    if normal in _SECRET_EXACT:
        return True
    if not _SECRET_KEY.search(normal):
        return False
    # token counts (prompt_tokens, tokens_per_s) are figures, not credentials
    return not (isinstance(value, int | float) and "tokens" in normal)


def _clean(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, bytes | bytearray | memoryview):
        return OMITTED
    if depth > 6:
        return OMITTED
    if isinstance(value, dict):
        return {k: _clean_item(str(k), v, secrets, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, secrets, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):  # dates and times
        return value.isoformat()
    return mask_text(repr(value), secrets)


def _clean_item(key: str, value: Any, secrets: tuple[str, ...], depth: int) -> Any:
    if key.lower() in _OMIT:
        return OMITTED
    if _is_secret_key(key, value):
        return MASK if value not in (None, "") else value
    return _clean(value, secrets, depth)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets and omit bodies in every field."""
    secrets = _configured_secrets()
    logger = event_dict.get("logger")
    for key in list(event_dict):
        if (logger, key) in _ALLOWED:
            continue
        if key in ("time", "level", "logger"):
            continue
        event_dict[key] = _clean_item(key, event_dict[key], secrets, 0)
    return event_dict


def add_request_context(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current request's id, tenant, actor and client address."""
    ctx = request_context.current()
    for key in ("request_id", "tenant", "actor", "client_address"):
        value = getattr(ctx, key)
        if value is not None:
            event_dict.setdefault(key, value)
    return event_dict


_FIRST = ("time", "level", "logger", "event", "request_id", "tenant", "actor", "client_address")


def _ordered(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with ANSI colours
    if event_dict.get("message") == event_dict.get("event"):  # set by another formatter first
        del event_dict["message"]
    ordered = {k: event_dict[k] for k in _FIRST if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        add_request_context,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]


def _configure_structlog() -> None:
    global _structlog_ready
    if _structlog_ready:
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _structlog_ready = True


def json_formatter() -> logging.Formatter:
    """The formatter that turns any log record (structlog's or stdlib's) into one JSON line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            _ordered,
            structlog.processors.JSONRenderer(),
        ],
    )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners replace it)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def configure_logging(level: str | None = None, stream: IO[str] | None = None) -> None:
    """JSON logs for this process: our handler on the root logger (replacing the one an earlier
    call installed; other handlers are left alone), uvicorn's and litestar's loggers sent
    through it, uvicorn's access log off (the API's middleware writes one line per request
    instead, without query strings). `level` None: the level already configured, or
    PRIVATUNE_LOG_LEVEL; `stream` None: the stream already configured, or stderr."""
    global _handler, _level
    _configure_structlog()
    if level is None:
        level = _level
    if level is None:
        from resources.settings import get_settings

        level = get_settings().log_level
    level = level.upper()
    bad_level = level not in LEVELS
    if bad_level:
        level = "INFO"
    _level = level

    root = logging.getLogger()
    if stream is None and _handler is not None:
        handler = _handler
    else:
        handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
        handler.set_name("privatune-json")
    handler.setFormatter(json_formatter())
    if _handler is not None and _handler is not handler:
        root.removeHandler(_handler)
    if handler not in root.handlers:
        root.addHandler(handler)
    _handler = handler
    root.setLevel(level)

    # uvicorn (and litestar's own config, when present) install plain-text handlers that do
    # not propagate: route them through ours.
    for name in ("uvicorn", "uvicorn.error", "litestar"):
        own = logging.getLogger(name)
        for h in list(own.handlers):
            own.removeHandler(h)
        own.propagate = True
    access = logging.getLogger("uvicorn.access")
    for h in list(access.handlers):
        access.removeHandler(h)
    # It logs the raw path and query string (a password-reset token can be there).
    access.disabled = True
    access.propagate = False
    # One line per outgoing HTTP call is noise at INFO (and the URL of an upstream runtime).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.captureWarnings(True)
    if bad_level:
        get_logger("privatune.logs").warning(
            "unknown log level; using INFO (set PRIVATUNE_LOG_LEVEL to DEBUG, INFO, WARNING "
            "or ERROR)"
        )


def get_logger(name: str) -> Any:
    """A structlog logger writing through the stdlib logger `name` (JSON once
    `configure_logging` ran)."""
    _configure_structlog()
    return structlog.stdlib.get_logger(name)
