"""CSRF protection for requests a browser authenticates with its cookies.

Litestar's CSRF middleware (double-submit: the `csrftoken` cookie, HMAC-signed with the
installation secret, must come back in the `X-CSRFToken` header or the `_csrf_token` form
field) checks every unsafe request that could ride on ambient cookies. Requests that carry their
own credentials (`Authorization` / `X-API-Key`) cannot be forged cross-site and skip it, so
scripts need no token; so do requests without a session cookie, which nothing authenticates,
except that one from another origin is refused (a forged sign-in)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.config.csrf import CSRFConfig
from litestar.connection import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from api.errors import Forbidden
from api.sessions import SESSION_COOKIE

CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
CSRF_FIELD = "_csrf_token"


def csrf_config(secret: str, secure: bool) -> CSRFConfig:
    return CSRFConfig(
        secret=secret,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_secure=secure,
        cookie_httponly=False,  # the portal's script reads it to send the header
        cookie_samesite="lax",
    )


def _refused(reason: str) -> Forbidden:
    return Forbidden(
        f"CSRF check failed: {reason}. A browser session must send the `csrftoken` cookie's value "
        "in the X-CSRFToken header (or the _csrf_token form field); scripts should use an API key "
        "(Authorization: Bearer ...) instead of cookies",
        code="csrf_failed",
    )


class CookieCSRFMiddleware(CSRFMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(
            scope=scope, receive=receive
        )
        if request.headers.get("authorization") or request.headers.get("x-api-key"):
            await self.app(scope, receive, send)
            return
        cookies = request.cookies
        if request.method not in self.config.safe_methods:
            if SESSION_COOKIE not in cookies:
                # Nothing ambient to ride on; a forged cross-site sign-in still shows its origin.
                origin = request.headers.get("origin")
                if origin and urlsplit(origin).netloc != request.headers.get("host"):
                    raise _refused(f"the request comes from another site ({origin})")
                await self.app(scope, receive, send)
                return
            token = request.headers.get(self.config.header_name)
            content_type, _ = request.content_type
            if not token and content_type in {
                RequestEncodingType.URL_ENCODED,
                RequestEncodingType.MULTI_PART,
            }:
                form = await request.form()
                value = form.get(CSRF_FIELD)
                token = value if isinstance(value, str) else None
            cookie = cookies.get(self.config.cookie_name)
            if not token or not cookie:
                raise _refused("no CSRF token was sent")
            if not self._csrf_tokens_match(token, cookie):
                raise _refused("the CSRF token does not match this browser's cookie")
            ScopeState.from_scope(scope).csrf_token = token
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
