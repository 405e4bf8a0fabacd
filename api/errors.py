"""One error hierarchy for the API; one handler turns each into JSON with a stable code."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


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


class ServiceUnavailable(AppError):
    status_code, code = 503, "service_unavailable"


def _body(status: int, code: str, message: str, details: Any = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response({"error": error}, status_code=status, media_type=MediaType.JSON)


def app_error_handler(_: Request, exc: AppError) -> Response:
    return _body(exc.status_code, exc.code, exc.message, exc.details)


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        return _body(
            400,
            "invalid_request",
            "the request body or parameters are invalid; see details",
            exc.extra,
        )
    if isinstance(exc, NotAuthorizedException):
        return _body(401, "unauthorized", exc.detail)
    codes = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }
    return _body(exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    request.logger.exception("unhandled error: %r", exc)
    return _body(500, "internal_error", "an internal error occurred; the request was not completed")
