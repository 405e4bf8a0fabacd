"""The API's request class: what a JSON body must be, beyond being JSON.

- A body nested deeper than the decoder follows (`[` x 100,000) is the client's error, 400
  `invalid_request`, like any other body that cannot be decoded.
- A body must have the types its schema says: Litestar converts bodies leniently (`0` for
  false, `"5"` for 5), which would accept what the OpenAPI document calls invalid; the body is
  checked strictly against the handler's type first. As in JSON Schema, a number with no
  fraction (`2.0`) is an integer.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


class ApiRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            value = await super().json()
            check_body_types(self, value)
        except RecursionError as exc:
            # msgspec (and the check) give up at the interpreter's recursion limit; Litestar
            # answers a SerializationException raised while reading the body with 400.
            raise SerializationException(
                "the JSON is nested too deeply (arrays or objects inside each other)"
            ) from exc
        return value


def check_body_types(request: Request[Any, Any, Any], value: Any) -> None:
    """ValidationException (400 invalid_request) when `value` is not exactly of the type of the
    handler's `data`, as msgspec decodes JSON (strict: no strings for numbers, no 0 for false)."""
    data = request.route_handler.parsed_data_field
    if data is None:
        return
    try:
        msgspec.convert(_integers(value), data.annotation, strict=True, str_keys=True)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        message = match["message"] if match else str(exc)
        key = (match["path"] or "").lstrip(".") if match else ""
        raise ValidationException(
            extra=[{"message": message, "key": key, "source": "body"}]
        ) from exc


def _integers(value: Any) -> Any:
    """The JSON value with each number that has no fraction as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value
