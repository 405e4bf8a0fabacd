"""Per-request observability: the request id (taken from `X-Request-Id` when well-formed,
generated otherwise, echoed on every response), the request context for the logs and the audit
trail, one JSON access line per request and the HTTP metrics.

`observe_requests(app)` wraps the whole application, outside Litestar's own routing and
exception handling, so 404s, 405s and errors raised in any middleware get the header, the log
line and the metrics too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar import Litestar
from litestar.logging.config import BaseLoggingConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.types.callable_types import ExceptionLoggingHandler, GetLogger

from api.security import PRINCIPAL_SCOPE_KEY
from resources import request_context
from resources.logs import configure_logging, get_logger
from resources.metrics import observe_http

log = get_logger("privatune.access")
_HEADER = request_context.REQUEST_ID_HEADER.lower().encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestObservability:
    """ASGI middleware (Litestar's MiddlewareProtocol); must wrap everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_context.accepted_request_id(_header(scope, _HEADER))
        echoed = (_HEADER, request_id.encode("latin-1"))
        client = scope.get("client")
        status = 500  # when the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, echoed]}  # type: ignore[typeddict-item]
            await send(message)

        started = time.perf_counter()
        with request_context.bound(
            request_id=request_id,
            client_address=client[0] if client else None,
            tenant=None,
            actor=None,
        ):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                status = 500
                log.exception("request_failed")
                raise
            finally:
                self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("path_template") or "unmatched"  # type: ignore[typeddict-item]
        method = str(scope.get("method", ""))
        context = request_context.current()
        # Authentication may have run in a worker thread, whose context changes stay there;
        # the principal cached on the scope says the same.
        principal: Any = scope.get(PRINCIPAL_SCOPE_KEY)  # type: ignore[typeddict-item]
        observe_http(method, route, status, seconds)
        log.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            tenant=context.tenant or getattr(principal, "tenant_slug", None),
            actor=context.actor or getattr(principal, "actor", None),
        )


def observe_requests(app: Litestar) -> Litestar:
    """Wrap `app` in RequestObservability, outermost (call once, after the app is built)."""
    if not isinstance(app.asgi_handler, RequestObservability):
        app.asgi_handler = RequestObservability(app.asgi_handler)
    return app


@dataclass
class JsonLogging(BaseLoggingConfig):
    """Litestar's logging config: our JSON logs (resources/logs.py). Unhandled exceptions are
    logged by the 500 handler (api/errors.py), not again by Litestar."""

    log_exceptions: Literal["always", "debug", "never"] = "never"
    traceback_line_limit: int = -1
    exception_logging_handler: ExceptionLoggingHandler | None = None
    disable_stack_trace: set[int | type[Exception]] = field(default_factory=set)

    def configure(self) -> GetLogger:
        configure_logging()
        return logging.getLogger

    @staticmethod
    def set_level(logger: Any, level: int) -> None:
        logger.setLevel(level)
