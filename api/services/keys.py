"""API keys of a tenant: many, each with a name, scopes, an optional expiry and its creator;
the secret is shown once (only its SHA-256 and prefix are kept) and a key is revoked at once.

A key never grants more than whoever made it may do: its scopes must be a subset of the
creator's, it acts with the creator's role, and when the creator leaves the tenant or loses
the role the key loses it too (api/authn.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api import schemas
from api.errors import BadRequest, Conflict, Forbidden, NotFound
from api.security import SCOPES
from api.services.base import TenantService
from resources.tables import ApiKey, utcnow

MAX_KEY_DAYS = 3650


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def key_view(row: ApiKey, now: datetime | None = None) -> schemas.ApiKeyInfo:
    now = now or utcnow()
    state = (
        "revoked"
        if row.revoked_at is not None
        else "expired"
        if row.expires_at is not None and _aware(row.expires_at) <= now
        else "active"
    )
    return schemas.ApiKeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes or []),
        role=row.role,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        state=state,
    )


class KeyService(TenantService):
    def keys(self, include_revoked: bool = False) -> list[schemas.ApiKeyInfo]:
        with self.scope() as scope:
            now = utcnow()
            return [key_view(k, now) for k in scope.api_keys(include_revoked=include_revoked)]

    def create(
        self,
        name: str,
        scopes: list[str],
        expires_at: datetime | None = None,
        expires_in_days: int | None = None,
    ) -> schemas.ApiKeyCreated:
        name = " ".join(name.split())
        if not 1 <= len(name) <= 200:
            raise BadRequest("name must be 1 to 200 characters", code="invalid_key")
        unknown = sorted(set(scopes) - set(SCOPES))
        if not scopes or unknown:
            raise BadRequest(
                f"scopes must be a non-empty list of {', '.join(SCOPES)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                code="invalid_key",
            )
        if not self.principal.may_grant(set(scopes)):
            beyond = sorted(set(scopes) - set(self.principal.scopes))
            raise Forbidden(
                f"you cannot hand out scopes you do not have yourself: {', '.join(beyond)}",
                code="insufficient_scope",
                details={"beyond": beyond},
            )
        if expires_at is not None and expires_in_days is not None:
            raise BadRequest("give expires_at or expires_in_days, not both", code="invalid_key")
        if expires_in_days is not None:
            if not 1 <= expires_in_days <= MAX_KEY_DAYS:
                raise BadRequest(
                    f"expires_in_days must be between 1 and {MAX_KEY_DAYS}", code="invalid_key"
                )
            expires_at = utcnow() + timedelta(days=expires_in_days)
        if expires_at is not None:
            expires_at = _aware(expires_at)
            if expires_at <= utcnow():
                raise BadRequest("expires_at must be in the future", code="invalid_key")
        with self.scope() as scope:
            creator_user = self.principal.user_id
            if creator_user is None and self.principal.key_id:
                # A key made by a key inherits its maker's person (and so the same cap).
                parent = scope.api_key(self.principal.key_id)
                creator_user = parent.created_by_user_id if parent else None
            secret, row = scope.create_api_key(
                name,
                scopes=scopes,
                role=self.principal.role or "viewer",
                created_by=self.actor,
                created_by_user_id=creator_user,
                expires_at=expires_at,
            )
            scope.audit(
                self.actor,
                "api_key.created",
                row.prefix,
                {"name": name, "scopes": row.scopes, "expires_at": expires_at},
            )
            return schemas.ApiKeyCreated(key_view(row), secret)

    def revoke(self, key_id: str) -> schemas.ApiKeyInfo:
        with self.scope() as scope:
            row = scope.api_key(key_id)
            if row is None:
                raise NotFound(f"no API key {key_id} in this tenant", code="api_key_not_found")
            if row.revoked_at is not None:
                raise Conflict("the key is already revoked", code="api_key_revoked")
            row.revoked_at = utcnow()
            scope.audit(self.actor, "api_key.revoked", row.prefix, {"name": row.name})
            return key_view(row)
