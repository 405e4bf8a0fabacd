"""A streamed answer served with its own media type.

Litestar 2's `Stream` takes the handler's media type over its own when it is turned into the
ASGI answer (against its docstring), so a handler that answers JSON or a stream (the audit
trail's `format=jsonl`, chat's `stream: true`) sent the stream as `application/json`."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import MediaType
from litestar.response import Stream as LitestarStream
from litestar.response.base import ASGIResponse


class Stream(LitestarStream):
    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        media_type: MediaType | str | None = None,
        **kwargs: Any,
    ) -> ASGIResponse:
        return super().to_asgi_response(
            app, request, media_type=self.media_type or media_type, **kwargs
        )
