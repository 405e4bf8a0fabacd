"""API-key authentication: every endpoint but tenant creation runs as one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request

from api.errors import Unauthorized
from resources.database import Database
from resources.repository import authenticate


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    tenant_slug: str
    key_id: str
    key_prefix: str

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_prefix}"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def provide_principal(request: Request, db: Database) -> Principal:
    token = bearer_token(request)
    if not token:
        raise Unauthorized(
            "missing API key: send `Authorization: Bearer <key>` (the key returned when the tenant was created)",
            code="missing_api_key",
        )
    with db.session() as session:
        found = authenticate(session, token)
        if found is None:
            raise Unauthorized("the API key is invalid or revoked", code="invalid_api_key")
        tenant, key = found
        return Principal(tenant.id, tenant.slug, key.id, key.prefix)
