"""Plans and quotas on PostgreSQL: uploads racing for the last unit of a document or storage
limit (threads released together by a barrier: exactly one wins), the usage report, the chat
rate limit (429 with Retry-After), and the run limits (concurrent and monthly: 429; steps: 413),
each refused run audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from resources.repository import TenantScope, tenant_by_slug
from resources.settings import get_settings
from resources.tables import Document, Run
from tests.conftest import OPERATOR
from tests.people import app_client, new_tenant

CHAT = {"messages": [{"role": "user", "content": "How many days of leave a year?"}]}


@pytest.fixture
def env(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    with app_client(postgres_url, tmp_path) as (client, app, db):
        yield client, app, db


def plan(client: TestClient, plan_id: str, **limits: int | None) -> dict:
    made = client.post(
        "/v1/admin/plans", json={"id": plan_id, "name": plan_id.title(), **limits}, headers=OPERATOR
    )
    assert made.status_code == 201, made.text
    return made.json()


def tenant_on(client: TestClient, db, slug: str, plan_id: str) -> dict[str, str]:
    """A tenant on `plan_id` with a project `handbook`; returns its owner key's headers."""
    key = new_tenant(client, slug)["api_key"]
    moved = client.post(f"/v1/admin/tenants/{slug}/plan", json={"plan": plan_id}, headers=OPERATOR)
    assert moved.status_code == 200 and moved.json()["plan"] == plan_id, moved.text
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
    return {"Authorization": f"Bearer {key}"}


def at_once(app, calls: list[Callable[[TestClient], httpx.Response]]) -> list[httpx.Response]:
    """Each call on its own client and thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    answers: list[httpx.Response | None] = [None] * len(calls)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        client = TestClient(app)
        try:
            barrier.wait(timeout=30)
            answers[i] = calls[i](client)
        except BaseException as exc:  # surfaced below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def upload(headers: dict[str, str], name: str, data: bytes) -> Callable:
    def send(client: TestClient) -> httpx.Response:
        return client.post(
            "/v1/projects/handbook/documents", files=[("f", (name, data))], headers=headers
        )

    return send


def stored(db, slug: str) -> tuple[int, int]:
    """Documents and bytes the database holds for the tenant."""
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        count, size = session.execute(
            select(func.count(), func.coalesce(func.sum(Document.size_bytes), 0)).where(
                Document.tenant_id == tenant.id
            )
        ).one()
        return int(count), int(size)


def usage(client: TestClient, headers: dict[str, str]) -> dict:
    answer = client.get("/v1/usage", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return {"plan": body["plan"], **{item["limit"]: item for item in body["limits"]}}


@pytest.mark.parametrize("round_", range(3))
def test_two_uploads_at_once_cannot_both_take_the_last_bytes(env, round_):
    client, app, db = env
    plan(client, "tiny", max_storage_bytes=1000)
    headers = tenant_on(client, db, "acme", "tiny")
    answers = at_once(
        app,
        [upload(headers, "a.txt", b"a" * 600), upload(headers, "b.txt", b"b" * 600)],
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 413], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 413).json()["error"]
    assert loser["code"] == "storage_quota_exceeded"
    assert loser["details"] == {
        "limit": "max_storage_bytes",
        "allowed": 1000,
        "used": 600,
        "requested": 600,
        "plan": "tiny",
    }
    assert "1000" in loser["message"]
    documents, size = stored(db, "acme")
    assert (documents, size) == (1, 600)
    report = usage(client, headers)
    assert report["plan"] == "tiny"
    assert report["max_storage_bytes"]["allowed"] == 1000
    assert report["max_storage_bytes"]["used"] == 600 <= 1000
    assert report["max_storage_bytes"]["remaining"] == 400


@pytest.mark.parametrize("round_", range(3))
def test_two_uploads_at_once_cannot_both_take_the_last_document(env, round_):
    client, app, db = env
    plan(client, "single", max_documents=1)
    headers = tenant_on(client, db, "acme", "single")
    answers = at_once(
        app, [upload(headers, "a.txt", b"first file"), upload(headers, "b.txt", b"second file")]
    )
    assert sorted(a.status_code for a in answers) == [201, 413], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 413).json()["error"]
    assert loser["code"] == "documents_quota_exceeded"
    assert loser["details"] == {
        "limit": "max_documents",
        "allowed": 1,
        "used": 1,
        "requested": 1,
        "plan": "single",
    }
    assert stored(db, "acme")[0] == 1
    assert usage(client, headers)["max_documents"] | {"meaning": ""} == {
        "limit": "max_documents",
        "meaning": "",
        "unit": "documents",
        "allowed": 1,
        "used": 1,
        "remaining": 0,
        "percent": 100.0,
    }
    # The winner's content again is no new document: accepted at the limit, nothing counted.
    winner = next(a for a in answers if a.status_code == 201).json()["documents"][0]
    content = {"a.txt": b"first file", "b.txt": b"second file"}[winner["filename"]]
    again = client.post(
        "/v1/projects/handbook/documents", files=[("f", ("copy.txt", content))], headers=headers
    )
    assert again.status_code == 201, again.text
    assert again.json()["created"] == 0 and again.json()["already_present"] == 1
    assert stored(db, "acme")[0] == 1


def test_the_usage_report_gives_every_limit_with_allowed_and_used(env):
    client, _, db = env
    limits = {
        "max_documents": 10,
        "max_storage_bytes": 5000,
        "max_runs_per_month": 7,
        "max_concurrent_runs": 2,
        "max_train_steps": 300,
        "chat_requests_per_minute": 30,
    }
    plan(client, "measured", **limits)
    headers = tenant_on(client, db, "acme", "measured")
    before = usage(client, headers)
    assert before["plan"] == "measured"
    assert set(before) - {"plan"} == set(limits)
    for field, allowed in limits.items():
        assert before[field]["allowed"] == allowed, field
        assert before[field]["used"] == 0, field
    made = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("a.txt", b"x" * 123)), ("g", ("b.txt", b"y" * 77))],
        headers=headers,
    )
    assert made.status_code == 201, made.text
    after = usage(client, headers)
    assert after["max_documents"]["used"] == 2 and after["max_documents"]["remaining"] == 8
    assert after["max_storage_bytes"]["used"] == 200
    assert after["max_storage_bytes"]["percent"] == 4.0
    assert after["max_train_steps"]["remaining"] == 300  # a per-run limit


def _wait_for_a_fresh_minute() -> None:
    """The chat window is the calendar minute: keep three requests inside one."""
    second = datetime.now(UTC).second
    if second >= 55:
        time.sleep(61 - second)


def test_the_third_chat_in_a_minute_is_refused_with_retry_after(env):
    client, _, db = env
    plan(client, "chatty")
    limited = client.patch(
        "/v1/admin/plans/chatty", json={"chat_requests_per_minute": 2}, headers=OPERATOR
    )
    assert limited.status_code == 200 and limited.json()["chat_requests_per_minute"] == 2
    headers = tenant_on(client, db, "acme", "chatty")
    other = tenant_on(client, db, "globex", "chatty")
    body = {"model": "acme/handbook", **CHAT}
    _wait_for_a_fresh_minute()
    first, second = (client.post("/v1/chat/completions", json=body, headers=headers) for _ in "12")
    # Both counted, then the model is looked up (this project has no deployment yet).
    for answer in (first, second):
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "no_deployment"
    third = client.post("/v1/chat/completions", json=body, headers=headers)
    assert third.status_code == 429, third.text
    error = third.json()["error"]
    assert error["code"] == "chat_rate_limited"
    assert error["details"] == {
        "limit": "chat_requests_per_minute",
        "allowed": 2,
        "used": 2,
        "requested": 1,
        "plan": "chatty",
    }
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert usage(client, headers)["chat_requests_per_minute"]["used"] == 2
    # The window is the tenant's own: another tenant on the same plan still chats.
    elsewhere = client.post(
        "/v1/chat/completions", json={"model": "globex/handbook", **CHAT}, headers=other
    )
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "no_deployment"
    # Removing the limit lets the tenant chat again at once.
    client.patch(
        "/v1/admin/plans/chatty", json={"chat_requests_per_minute": None}, headers=OPERATOR
    )
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 404


def _runs(db, slug: str) -> int:
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        return int(
            session.scalar(select(func.count()).select_from(Run).where(Run.tenant_id == tenant.id))
            or 0
        )


def _add_run(db, slug: str, status: str) -> str:
    """A run row as Dagster would have left it (no Dagster run id: nothing to refresh)."""
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        scope = TenantScope(session, tenant.id)
        project = scope.project("handbook")
        assert project is not None
        run = scope.add_run(project.id, "pipeline", {})
        run.status = status
        return run.id


def test_run_limits_answer_429_and_413_and_each_refusal_is_audited(env):
    client, _, db = env
    plan(client, "runs", max_train_steps=10, max_concurrent_runs=1)
    headers = tenant_on(client, db, "acme", "runs")
    # What every run needs before the quotas are looked at: a document and the rights.
    uploaded = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("leave.txt", b"Leave is 25 days a year."))],
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    rights = client.put(
        "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo Bloggs"}, headers=headers
    )
    assert rights.status_code == 200, rights.text
    runs = "/v1/projects/handbook/runs"

    steps = client.post(runs, json={"train_steps": 11}, headers=headers)
    assert steps.status_code == 413, steps.text
    assert steps.json()["error"]["code"] == "train_steps_quota_exceeded"
    assert steps.json()["error"]["details"] == {
        "limit": "max_train_steps",
        "allowed": 10,
        "used": 0,
        "requested": 11,
        "plan": "runs",
    }
    # At the limit the run passes every rule and only Dagster is missing.
    within = client.post(runs, json={"train_steps": 10}, headers=headers)
    assert within.status_code == 503, within.text
    assert within.json()["error"]["code"] == "orchestrator_unavailable"
    failed_run = client.get(runs, headers=headers).json()[0]
    assert failed_run["status"] == "failed"

    _add_run(db, "acme", "running")
    before = _runs(db, "acme")
    concurrent = client.post(runs, json={"train_steps": 5}, headers=headers)
    assert concurrent.status_code == 429, concurrent.text
    assert concurrent.json()["error"]["code"] == "concurrent_runs_quota_exceeded"
    assert concurrent.json()["error"]["details"] == {
        "limit": "max_concurrent_runs",
        "allowed": 1,
        "used": 1,
        "requested": 1,
        "plan": "runs",
    }
    assert int(concurrent.headers["retry-after"]) >= 1
    assert _runs(db, "acme") == before  # a refused run leaves no row

    this_month = _runs(db, "acme")
    client.patch(
        "/v1/admin/plans/runs",
        json={"max_concurrent_runs": None, "max_runs_per_month": this_month},
        headers=OPERATOR,
    )
    monthly = client.post(runs, json={"train_steps": 5}, headers=headers)
    assert monthly.status_code == 429, monthly.text
    assert monthly.json()["error"]["code"] == "monthly_runs_quota_exceeded"
    assert monthly.json()["error"]["details"] == {
        "limit": "max_runs_per_month",
        "allowed": this_month,
        "used": this_month,
        "requested": 1,
        "plan": "runs",
    }
    now = datetime.now(UTC)
    to_next_month = (now.replace(day=28) - now).total_seconds() + 4 * 86400
    assert 1 <= int(monthly.headers["retry-after"]) <= to_next_month
    # A retry is not a new run of the month: it passes the monthly limit.
    retried = client.post(f"{runs}/{failed_run['id']}/retry", headers=headers)
    assert retried.status_code == 503, retried.text
    assert retried.json()["error"]["code"] == "orchestrator_unavailable"
    assert _runs(db, "acme") == this_month

    refused = client.get("/v1/audit", params={"action": "run.refused"}, headers=headers).json()[
        "items"
    ]
    assert sorted(e["data"]["code"] for e in refused) == [
        "concurrent_runs_quota_exceeded",
        "monthly_runs_quota_exceeded",
        "train_steps_quota_exceeded",
    ]
    assert all(e["target"] == "handbook" and e["actor"].startswith("api_key:") for e in refused)
    assert all(e["request_id"] for e in refused)
