"""Who and what the current unit of work is: the request id, the client's address, the tenant
and the actor (a user or an API key's prefix). The API's middleware sets them for each request;
a Dagster run's stages set them from the run's tags. The audit trail stamps every row with them
and the JSON logs carry them, so one request can be followed through the logs, the audit trail
and the Dagster run it caused."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# A request id a client may choose: printable, no spaces, short enough to log.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
REQUEST_ID_HEADER = "X-Request-Id"
# The Dagster run tag that carries the id of the request that launched the run.
REQUEST_ID_TAG = "privatune/request_id"


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None = None
    client_address: str | None = None
    tenant: str | None = None  # the tenant's slug
    actor: str | None = None  # user:<email> | api_key:<prefix> | operator | dagster


# RequestContext is frozen: the shared default cannot be changed in place.
_current: ContextVar[RequestContext] = ContextVar(
    "privatune_request",
    default=RequestContext(),  # noqa: B039
)


def current() -> RequestContext:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The client's request id when it is well-formed, otherwise a new one."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return new_request_id()


def update(**changes: str | None) -> None:
    """Change fields of the current context (for the rest of this task or thread)."""
    values = {**current().__dict__, **changes}
    _current.set(RequestContext(**values))


@contextmanager
def bound(**values: str | None) -> Iterator[RequestContext]:
    """A context for the block; the previous one is restored afterwards."""
    token = _current.set(RequestContext(**{**current().__dict__, **values}))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
