"""Helpers the account, role and quota tests share: an app on PostgreSQL, tenants made by the
operator, people invited with a role and signed in (each in their own cookie jar)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from litestar.testing import TestClient

from api.app import create_app
from resources.database import Database
from resources.object_store import LocalObjectStore
from resources.orchestrator import DagsterOrchestrator
from tests.conftest import OPERATOR

PASSWORD = "violet kettle orbit 42 sundial"
UNREACHABLE = DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2)


@contextmanager
def app_client(url: str, tmp_path, orchestrator: DagsterOrchestrator = UNREACHABLE) -> Iterator:
    db = Database(url=url)
    db.migrate()
    app = create_app(
        database=db, store=LocalObjectStore(tmp_path / "objects"), orchestrator=orchestrator
    )
    with TestClient(app) as client:
        yield client, app, db


@dataclass
class Person:
    """A signed-in person: their own client (cookies), CSRF token and tenant."""

    email: str
    client: TestClient
    csrf: str
    tenant: str
    role: str
    user_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {"X-CSRFToken": self.csrf}

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)

    def post(self, path: str, **kw):
        return self.client.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, **kw):
        return self.client.put(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, **kw):
        return self.client.patch(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw):
        return self.client.delete(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)


def new_tenant(client: TestClient, slug: str, owner_email: str | None = None) -> dict:
    body = {"slug": slug, "name": slug.title()}
    if owner_email:
        body["owner_email"] = owner_email
    created = client.post("/v1/tenants", json=body, headers=OPERATOR)
    assert created.status_code == 201, created.text
    return created.json()


def accept(
    app, token: str, password: str = PASSWORD, name: str | None = None
) -> tuple[TestClient, dict]:
    """Accept an invitation in a fresh browser (cookie jar); returns it and the answer."""
    # Not entered: the app's lifespan belongs to the first client.
    client = TestClient(app)
    answer = client.post(
        "/v1/invitations/accept",
        json={"token": token, "password": password, "display_name": name},
    )
    assert answer.status_code == 200, answer.text
    return client, answer.json()


def token_of(invitation: dict) -> str:
    return invitation["accept_url"].split("token=", 1)[1]


def owner_of(client: TestClient, app, slug: str, email: str | None = None) -> tuple[Person, str]:
    """A tenant whose first owner accepted the operator's invitation; returns the owner and
    the tenant's owner API key."""
    email = email or f"owner@{slug}.example.com"
    created = new_tenant(client, slug, email)
    browser, answer = accept(app, token_of(created["invitation"]))
    person = Person(
        email,
        browser,
        answer["csrf_token"],
        slug,
        "owner",
        user_id=answer["user"]["id"],
    )
    return person, created["api_key"]


def invite(inviter: Person, app, email: str, role: str) -> Person:
    made = inviter.post("/v1/members/invitations", json={"email": email, "role": role})
    assert made.status_code == 201, made.text
    browser, answer = accept(app, token_of(made.json()))
    return Person(email, browser, answer["csrf_token"], inviter.tenant, role, answer["user"]["id"])


def sign_in(app, email: str, password: str = PASSWORD, **extra) -> tuple[TestClient, object]:
    client = TestClient(app)
    return client, client.post(
        "/v1/auth/sign-in", json={"email": email, "password": password, **extra}
    )
