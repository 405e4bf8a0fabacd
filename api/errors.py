"""One error hierarchy for the API; one handler turns each into JSON with a stable code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    SerializationException,
    ValidationException,
)
from sqlalchemy.exc import DataError

from api.schemas import ErrorBody, ErrorInfo
from resources import request_context
from resources.logs import get_logger
from resources.project_settings import InvalidSetting, ServingRuntime, decode_error

log = get_logger("privatune.api")
NUMERIC_VALUE_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details
        self.headers = headers or {}


class BadRequest(AppError):
    status_code, code = 400, "bad_request"


class Unauthorized(AppError):
    status_code, code = 401, "unauthorized"


class Forbidden(AppError):
    status_code, code = 403, "forbidden"


class NotFound(AppError):
    status_code, code = 404, "not_found"


class Conflict(AppError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status_code, code = 413, "payload_too_large"


class QuotaExceeded(AppError):
    # 413: the upload cannot be stored; the code tells it apart from a too-large file.
    status_code, code = 413, "quota_exceeded"


class TooManyRequests(AppError):
    # 429 with Retry-After: a rate or concurrency limit; trying later works.
    status_code, code = 429, "too_many_requests"


class ServiceUnavailable(AppError):
    status_code, code = 503, "service_unavailable"


def _body(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    # The id to quote when reporting the error (also the X-Request-Id header).
    request_id = request_context.current().request_id or None
    return Response(
        ErrorBody(ErrorInfo(code, message, details, request_id)),
        status_code=status,
        media_type=MediaType.JSON,
        headers=dict(headers or {}),
    )


def app_error_handler(_: Request, exc: AppError) -> Response:
    return _body(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def http_error_handler(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        if (invalid := _invalid_setting(request, exc.extra)) is not None:
            return _body(
                400,
                "invalid_settings",
                str(invalid),
                {"setting": invalid.setting, "errors": exc.extra},
            )
        return _body(
            400,
            "invalid_request",
            "the request body or parameters are invalid; see details",
            exc.extra,
        )
    if isinstance(exc, NotAuthorizedException):
        return _body(401, "unauthorized", exc.detail)
    if exc.status_code == 400 and isinstance(exc.__cause__, SerializationException):
        # The body could not be decoded at all (malformed, truncated, not UTF-8, a number out
        # of range, nested too deeply): the same code as a body that fails the schema.
        return _body(
            400,
            "invalid_request",
            f"the request body is not valid JSON: {exc.detail}",
            [{"message": exc.detail, "key": "", "source": "body"}],
        )
    codes = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }
    # Litestar's own headers stay: `Allow` on a 405 names the methods the path takes.
    return _body(
        exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail, headers=exc.headers
    )


def _invalid_setting(request: Request, errors: Any) -> InvalidSetting | None:
    """A project setting the body failed to decode with, in the settings' words: a field under
    the body's `settings`, or any field of a body that is the `runtime` setting itself."""
    data = getattr(request.scope.get("route_handler"), "parsed_data_field", None)
    runtime_body = data is not None and data.annotation is ServingRuntime
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        key = str(error.get("key", ""))
        if key == "settings" or key.startswith("settings."):
            path = key.removeprefix("settings").lstrip(".")
        elif runtime_body and error.get("source", "body") == "body":
            path = "runtime" if key in ("", "data") else f"runtime.{key}"
        else:
            continue
        return decode_error(path, str(error.get("message", "")))
    return None


def unstorable(exc: Exception) -> str | None:
    """What is wrong with a value the database cannot hold, when that is why `exc` was raised:
    text with NUL characters (PostgreSQL text cannot hold them, so the driver refuses them) or
    a number beyond its column's range. Such a value can only have come from the request."""
    if isinstance(exc, ValueError) and "NUL (0x00)" in str(exc):
        return "text in the request contains NUL characters (\\u0000), which are not accepted"
    if isinstance(exc, DataError):
        if getattr(exc.orig, "pgcode", None) == NUMERIC_VALUE_OUT_OF_RANGE:
            return (
                "a number in the request is larger than this field holds (the API document "
                "gives each one's maximum)"
            )
        return "a value in the request is not of the form or size its field holds"
    return None


def internal_error_handler(request: Request, exc: Exception) -> Response:
    if (problem := unstorable(exc)) is not None:
        return _body(400, "invalid_request", problem)
    log.exception(
        "unhandled_error", error=type(exc).__name__, route=request.scope.get("path_template")
    )
    return _body(500, "internal_error", "an internal error occurred; the request was not completed")
