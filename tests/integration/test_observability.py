"""Request ids, JSON access logs, Prometheus metrics and the absence of secrets in the logs,
through the real app on a temporary SQLite home (Dagster runs in process where a run is needed)."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg
import pyotp
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.errors import internal_error_handler
from api.observability import JsonLogging, observe_requests
from pipelines.definitions import all_assets, all_checks
from resources import request_context
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.logs import configure_logging
from resources.metrics import DatabaseCollector, quarantine_reason, serve_metrics_port
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, create_tenant, tenant_by_slug
from resources.tables import AuditEvent, RunEvent, utcnow
from tests.conftest import BAD_SAMPLES

OPERATOR_TOKEN = "operator-" + "7c1e9a" * 5
UNREACHABLE = DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2)
GENERATED = r"^[0-9a-f]{32}$"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_ADMIN_TOKEN", OPERATOR_TOKEN)
    from resources.settings import get_settings

    get_settings.cache_clear()
    return tmp_path


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the process logs during the test, as it would reach stderr."""
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    yield buffer
    configure_logging("INFO", stream=io.StringIO())


@pytest.fixture
def client(home, logs) -> Iterator[TestClient]:
    with TestClient(create_app(orchestrator=UNREACHABLE)) as c:
        yield c


def log_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def access_lines(buffer: io.StringIO) -> list[dict]:
    return [line for line in log_lines(buffer) if line["event"] == "request"]


def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", headers=operator())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def new_tenant(client: TestClient, slug: str = "acme") -> str:
    created = client.post("/v1/tenants", json={"slug": slug}, headers=operator())
    assert created.status_code == 201, created.text
    return created.json()["api_key"]


def new_project(slug: str, tenant: str = "acme") -> None:
    # Creating one through the API registers a Dagster partition first (no Dagster here).
    with Database().session() as session:
        found = tenant_by_slug(session, tenant)
        assert found is not None
        TenantScope(session, found.id).create_project(slug, slug.title(), {})


# --- request ids ---------------------------------------------------------------------------


def test_a_well_formed_request_id_is_echoed_and_logged(client, logs):
    chosen = "client-req.0001:abc"
    response = client.get("/health", headers={"X-Request-Id": chosen})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == chosen
    (line,) = access_lines(logs)
    assert line["request_id"] == chosen and line["route"] == "/health"
    assert line["status"] == 200 and line["method"] == "GET" and line["duration_ms"] >= 0
    assert line["client_address"] == "testclient"


@pytest.mark.parametrize("bad", ["has spaces in it", "x" * 1000, "short", "semi;colon-id-1"])
def test_a_malformed_request_id_is_replaced(client, logs, bad):
    response = client.get("/health", headers={"X-Request-Id": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad and len(generated) == 32 and int(generated, 16) >= 0
    assert access_lines(logs)[0]["request_id"] == generated


def test_every_error_carries_the_request_id(client, logs):
    key = new_tenant(client)
    cases = [
        ("get", "/v1/projects", {}, 401),  # no credentials
        ("get", "/v1/projects/nope", {"Authorization": f"Bearer {key}"}, 404),  # app error
        ("post", "/v1/projects", {"Authorization": f"Bearer {key}"}, 400),  # invalid body
        ("get", "/no/such/route", {}, 404),  # no route
        ("delete", "/health", {}, 405),  # no such method
    ]
    for method, path, headers, status in cases:
        rid = f"err-{uuid.uuid4().hex[:12]}"
        kwargs = {"json": {"slug": 3}} if method == "post" else {}
        response = client.request(
            method.upper(), path, headers={**headers, "X-Request-Id": rid}, **kwargs
        )
        assert response.status_code == status, (path, response.text)
        assert response.headers["x-request-id"] == rid
        assert response.json()["error"]["request_id"] == rid
    by_id = {line["request_id"]: line for line in access_lines(logs)}
    unmatched = [line for line in by_id.values() if line["route"] == "unmatched"]
    assert {(line["method"], line["status"]) for line in unmatched} >= {("GET", 404)}
    assert not any("/no/such/route" in json.dumps(line) for line in log_lines(logs))


def test_errors_raised_in_middleware_still_get_the_id_and_a_log_line(logs):
    def failing(app):  # a middleware that fails before the route runs
        async def middleware(scope, receive, send):
            raise RuntimeError("middleware broke")

        return middleware

    @get("/ping", sync_to_thread=False, middleware=[failing])
    def ping() -> str:
        return "pong"

    leaked = "ptk_" + "Q" * 30

    @get("/boom", sync_to_thread=False)
    def boom() -> str:
        raise ValueError(f"handler broke holding {leaked}")

    app = observe_requests(
        Litestar(
            route_handlers=[ping, boom],
            exception_handlers={Exception: internal_error_handler},
            logging_config=JsonLogging(),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/ping", headers={"X-Request-Id": "mw-failure-0001"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "mw-failure-0001"
        assert response.json()["error"]["request_id"] == "mw-failure-0001"
        crashed = c.get("/boom")
        assert crashed.status_code == 500
        assert crashed.json()["error"]["request_id"] == crashed.headers["x-request-id"]
    first, second = access_lines(logs)
    assert first["status"] == 500 and first["request_id"] == "mw-failure-0001"
    assert first["route"] == "/ping"
    failures = [line for line in log_lines(logs) if line["event"] == "unhandled_error"]
    assert [line["error"] for line in failures] == ["RuntimeError", "ValueError"]
    failure = failures[1]
    assert failure["request_id"] == crashed.headers["x-request-id"] == second["request_id"]
    assert "ValueError: handler broke holding ptk_" in failure["exception"]
    assert leaked not in logs.getvalue()


# --- metrics -------------------------------------------------------------------------------


def test_metrics_need_the_operator(client):
    assert client.get("/metrics").status_code == 401
    key = new_tenant(client)
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    assert client.get("/metrics", headers=operator()).status_code == 200


def test_http_metrics_use_route_templates(client):
    key = new_tenant(client)
    new_project("handbook")
    headers = {"Authorization": f"Bearer {key}"}
    before = scrape(client)
    for _ in range(3):
        assert client.get("/v1/projects/handbook/documents", headers=headers).status_code == 200
    assert client.get("/v1/projects/handbook/documents/abc", headers=headers).status_code == 404
    after = scrape(client)
    route = "/v1/projects/{project}/documents"
    counted = value(after, "privatune_http_requests_total", method="GET", route=route, status="200")
    assert (
        counted
        - value(before, "privatune_http_requests_total", method="GET", route=route, status="200")
        == 3
    )
    histogram = value(
        after,
        "privatune_http_request_duration_seconds_count",
        method="GET",
        route=route,
        status="200",
    )
    assert histogram >= 3
    text = client.get("/metrics", headers=operator()).text
    assert "handbook" not in text and "acme" not in text  # no tenant data in any label
    assert 'route="/v1/projects/{project}/documents/{document_id}",status="404"' in text


def test_upload_and_quarantine_counters(client):
    key = new_tenant(client)
    new_project("handbook")
    headers = {"Authorization": f"Bearer {key}"}
    before = scrape(client)
    files = [
        ("files", ("a.txt", b"first file")),
        ("files", ("b.txt", b"second file")),
        ("files", ("broken.zip", b"PK\x03\x04" + b"not really a zip" * 4)),
    ]
    assert (
        client.post("/v1/projects/handbook/documents", files=files, headers=headers).status_code
        == 201
    )
    again = [("files", ("a.txt", b"first file"))]
    assert (
        client.post("/v1/projects/handbook/documents", files=again, headers=headers).status_code
        == 201
    )
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("privatune_uploads_total", outcome="created") == 2
    assert moved("privatune_uploads_total", outcome="quarantined_on_upload") == 1
    assert moved("privatune_uploads_total", outcome="already_present") == 1
    quarantined = "privatune_documents_quarantined_total"
    assert value(after, quarantined, reason="archive_rejected") == 1
    assert value(after, quarantined, reason="malware") == 0


def test_runs_by_status_and_stage_durations_come_from_the_database(client):
    new_tenant(client)
    new_project("handbook")
    with Database().session() as session:
        tenant = tenant_by_slug(session, "acme")
        assert tenant is not None
        scope = TenantScope(session, tenant.id)
        project = scope.project("handbook")
        assert project is not None
        runs = [scope.add_run(project.id, "pipeline", {}) for _ in range(3)]
        runs[0].status, runs[1].status = "failed", "succeeded"
        scope.add_run_event(runs[1].id, "stage_finished", "", "raw_documents", {"seconds": 2.5})
        scope.add_run_event(runs[1].id, "stage_finished", "", "splits", {"seconds": 40.0})
        scope.add_run_event(runs[1].id, "stage_started", "", "splits", {})
    samples = scrape(client)
    assert value(samples, "privatune_runs", status="queued") == 1
    assert value(samples, "privatune_runs", status="failed") == 1
    assert value(samples, "privatune_runs", status="succeeded") == 1
    assert value(samples, "privatune_runs", status="training") == 0
    stage = "privatune_pipeline_stage_duration_seconds"
    assert value(samples, f"{stage}_count", stage="raw_documents") == 1
    assert value(samples, f"{stage}_sum", stage="splits") == 40.0
    assert value(samples, f"{stage}_bucket", stage="splits", le="30.0") == 0
    # read incrementally: a second scrape counts nothing twice
    assert value(scrape(client), f"{stage}_count", stage="splits") == 1


def test_rows_committed_out_of_id_order_are_counted_once(client):
    new_tenant(client)
    new_project("handbook")
    with Database().session() as session:
        tenant = tenant_by_slug(session, "acme")
        assert tenant is not None
        scope = TenantScope(session, tenant.id)
        run = scope.add_run(scope.project("handbook").id, "pipeline", {})
        tenant_id, run_id = tenant.id, run.id
        top = session.query(RunEvent.id).order_by(RunEvent.id.desc()).first()
        base = (top[0] if top else 0) + 10

    def add(event_id: int, seconds: float) -> None:
        with Database().session() as session:
            session.add(
                RunEvent(
                    id=event_id,
                    tenant_id=tenant_id,
                    run_id=run_id,
                    kind="stage_finished",
                    stage="adapter",
                    data={"seconds": seconds},
                    at=utcnow() - timedelta(seconds=1),
                )
            )

    add(base + 2, 10.0)  # committed first, though its id came second
    name = "privatune_pipeline_stage_duration_seconds_count"
    assert value(scrape(client), name, stage="adapter") == 1
    add(base + 1, 20.0)  # the slower transaction commits
    assert value(scrape(client), name, stage="adapter") == 2
    assert value(scrape(client), name, stage="adapter") == 2


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("malware: Eicar-Signature found by clamd; the file is never parsed", "malware"),
        ("empty: the file is empty; upload it again with its content", "empty"),
        ("unsupported_type: the content is not PDF ...", "unsupported_type"),
        ("type_mismatch: the name says pdf but the content is txt", "type_mismatch"),
        ("archive_encrypted: x.docx is encrypted; upload it unencrypted", "archive_rejected"),
        ("archive_ratio: compressed 900:1", "archive_rejected"),
        ("encrypted: the PDF needs a password", "encrypted"),
        ("corrupt: cannot be read", "corrupt"),
        ("timeout: extraction ran past 60 s", "timeout"),
        ("Acme's secret plan leaked", "other"),
        (None, "other"),
    ],
)
def test_quarantine_reason_codes(reason, code):
    assert quarantine_reason(reason) == code


# --- no secrets in the logs ----------------------------------------------------------------


@dataclass
class Flow:
    """A walk through the API that handles secrets; each step adds what must never be logged."""

    client: TestClient
    secrets: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def create_tenant_as_operator(flow: Flow) -> None:
    flow.secrets["operator token"] = OPERATOR_TOKEN
    key = new_tenant(flow.client)
    flow.secrets["API key"] = key
    flow.headers = {"Authorization": f"Bearer {key}"}


def create_projects(flow: Flow) -> None:
    # Through the API (refused: no Dagster here) and directly, as the other tests do.
    refused = flow.client.post("/v1/projects", json={"slug": "handbook"}, headers=flow.headers)
    assert refused.status_code == 503
    new_project("handbook")
    new_project("policies")


def upload_a_document(flow: Flow) -> None:
    marker = f"The vault combination is {uuid.uuid4().hex} for Acme staff only."
    flow.secrets["document text"] = marker
    files = [("files", ("vault.txt", marker.encode()))]
    response = flow.client.post(
        "/v1/projects/handbook/documents?note=ok", files=files, headers=flow.headers
    )
    assert response.status_code == 201, response.text


def set_project_settings(flow: Flow) -> None:
    refusal = f"Ask the Acme helpdesk (ref {uuid.uuid4().hex})."
    flow.secrets["project setting text"] = refusal
    response = flow.client.patch(
        "/v1/projects/handbook", json={"settings": {"refusal_text": refusal}}, headers=flow.headers
    )
    assert response.status_code == 200, response.text


def call_with_a_bogus_key(flow: Flow) -> None:
    bogus = "ptk_" + uuid.uuid4().hex + "Bogus"
    flow.secrets["bogus API key"] = bogus
    response = flow.client.get("/v1/projects", headers={"Authorization": f"Bearer {bogus}"})
    assert response.status_code == 401
    response = flow.client.get("/v1/projects", headers={"X-API-Key": bogus})
    assert response.status_code == 401


def people_sign_in_with_passwords_and_codes(flow: Flow) -> None:
    """Invitation tokens, passwords (right, wrong, new), session cookies, CSRF tokens, TOTP
    secrets and codes, recovery codes and a new key's secret all pass through the API."""
    invited = flow.client.post(
        "/v1/members/invitations",
        json={"email": "logs.person@example.com", "role": "admin"},
        headers=flow.headers,
    ).json()
    # The invitation link itself is logged on purpose here: with no mail server configured,
    # the log is where the operator finds it (docs/accounts.md).
    token = invited["accept_url"].split("token=", 1)[1]
    password = f"sapphire otter {uuid.uuid4().hex[:8]} lantern"
    flow.secrets["password"] = password
    browser = TestClient(flow.client.app)
    accepted = browser.post("/v1/invitations/accept", json={"token": token, "password": password})
    assert accepted.status_code == 200, accepted.text
    csrf = {"X-CSRFToken": accepted.json()["csrf_token"]}
    flow.secrets["CSRF token"] = csrf["X-CSRFToken"]
    flow.secrets["session id"] = browser.cookies["privatune_session"]
    wrong = f"wrong horse {uuid.uuid4().hex[:8]} battery"
    flow.secrets["wrong password"] = wrong
    failed = TestClient(flow.client.app).post(
        "/v1/auth/sign-in", json={"email": "logs.person@example.com", "password": wrong}
    )
    assert failed.status_code == 401
    secret = browser.post("/v1/auth/totp", headers=csrf).json()["secret"]
    flow.secrets["TOTP secret"] = secret
    code = pyotp.TOTP(secret).now()
    codes = browser.post("/v1/auth/totp/confirm", json={"code": code}, headers=csrf).json()
    flow.secrets["recovery code"] = codes["recovery_codes"][0]
    made = browser.post("/v1/keys", json={"name": "ci", "scopes": ["read"]}, headers=csrf).json()
    flow.secrets["new key secret"] = made["secret"]
    new_password = f"granite {uuid.uuid4().hex[:8]} meadow owl"
    flow.secrets["new password"] = new_password
    changed = browser.post(
        "/v1/auth/password",
        json={"current_password": password, "new_password": new_password},
        headers=csrf,
    )
    assert changed.status_code == 200, changed.text


# Steps in order; add new ones at the end.
FLOW: list[Callable[[Flow], None]] = [
    create_tenant_as_operator,
    create_projects,
    upload_a_document,
    set_project_settings,
    call_with_a_bogus_key,
    people_sign_in_with_passwords_and_codes,
]


def test_no_secrets_in_the_logs_of_a_full_flow(client, logs):
    flow = Flow(client)
    for step in FLOW:
        step(flow)
    text = logs.getvalue()
    assert text, "the flow logged nothing: the capture is broken"
    for what, secret in flow.secrets.items():
        assert secret not in text, f"the logs hold the {what}"
    lines = log_lines(logs)  # every line is one JSON object
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) >= len(FLOW)
    for line in requests:
        assert line["request_id"] and line["route"] and line["status"]
        assert "?" not in line["route"]
    assert any(line.get("tenant") == "acme" for line in requests)  # who called is logged
    assert any(str(line.get("actor", "")).startswith("api_key:ptk_") for line in requests)


# --- Dagster runs carry the request id --------------------------------------------------------


class InProcessDagster(DagsterOrchestrator):
    """Stands in for the Dagster webserver's run queue: `launch` materialises `raw_documents`
    on an in-memory Dagster instance, in a thread of its own (like a run worker, it does not
    inherit the API request's context: only the run's tags carry the request id)."""

    def __init__(self, resources: dict) -> None:
        super().__init__(url="http://127.0.0.1:9", timeout=2)
        self.instance = dg.DagsterInstance.ephemeral()
        self.resources = resources
        self.results: list[dg.ExecuteInProcessResult] = []

    def launch(self, partition: str, run_config: dict, tags: dict, job: str = "") -> str:
        self.instance.add_dynamic_partitions("tenant_project", [partition])

        def run() -> None:
            self.results.append(
                dg.materialize(
                    [*all_assets, *all_checks],
                    selection=["raw_documents"],
                    partition_key=partition,
                    instance=self.instance,
                    resources=self.resources,
                    tags=tags,
                    raise_on_error=False,
                )
            )

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        return self.results[-1].run_id


def test_a_run_carries_the_request_id_into_its_logs_and_audit_rows(home, logs):
    store = ObjectStoreResource(backend="local", root=str(home / "objects"))
    db = Database()
    dagster = InProcessDagster(
        {
            "db": db,
            "store": store,
            "runtime": ModelRuntime(),
            "antivirus": Antivirus(address="", required=False),
            "io_manager": ObjectStoreManifestIOManager(store=store),
        }
    )
    with TestClient(create_app(database=db, store=store.get_store(), orchestrator=dagster)) as c:
        key = new_tenant(c)
        new_project("handbook")
        headers = {"Authorization": f"Bearer {key}"}
        empty = (BAD_SAMPLES / "empty.txt").read_bytes()
        uploaded = c.post(
            "/v1/projects/handbook/documents",
            files=[("files", ("empty.txt", empty))],
            headers=headers,
        )
        assert uploaded.status_code == 201, uploaded.text
        rights = c.put(
            "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo"}, headers=headers
        )
        assert rights.status_code == 200, rights.text
        started = c.post(
            "/v1/projects/handbook/runs",
            json={"train_steps": 1},
            headers={**headers, "X-Request-Id": "run-request-0001"},
        )
        assert started.status_code == 202, started.text
        samples = scrape(c)
    assert dagster.results, "the run was not launched"
    run = dagster.instance.get_run_by_id(dagster.results[0].run_id)
    assert run is not None and run.tags[request_context.REQUEST_ID_TAG] == "run-request-0001"
    with db.session() as session:
        quarantined = session.query(AuditEvent).filter_by(action="document.quarantined").all()
    assert [row.request_id for row in quarantined] == ["run-request-0001"]
    assert quarantined[0].actor == "dagster"
    stage_lines = [
        line
        for line in log_lines(logs)
        if line["event"] in ("stage_started", "stage_finished")
        and line.get("stage") == "raw_documents"
    ]
    assert [line["event"] for line in stage_lines] == ["stage_started", "stage_finished"]
    for line in stage_lines:
        assert line["request_id"] == "run-request-0001"
        assert line["tenant"] == "acme" and line["actor"] == "dagster"
        assert line["partition"] == "acme__handbook"
    assert stage_lines[1]["seconds"] >= 0
    assert value(samples, "privatune_documents_quarantined_total", reason="empty") == 1
    stage = "privatune_pipeline_stage_duration_seconds_count"
    assert value(samples, stage, stage="raw_documents") == 1


def test_database_metrics_on_postgresql(postgres_url):
    db = Database(url=postgres_url)
    db.migrate()
    with db.session() as session:
        tenant, _ = create_tenant(session, "acme", "Acme")
        scope = TenantScope(session, tenant.id)
        project = scope.create_project("handbook", "Handbook", {})
        run = scope.add_run(project.id, "training", {})
        run.status = "training"
        scope.add_run_event(run.id, "stage_finished", "", "adapter", {"seconds": 95.0})
        scope.audit("dagster", "document.quarantined", "doc-1", {"reason": "corrupt: unreadable"})
        scope.audit("dagster", "document.uploaded", "doc-2", {"filename": "x.txt"})
    collector = DatabaseCollector(db)
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in collector.collect()
        for s in family.samples
    }
    assert value(samples, "privatune_documents_quarantined_total", reason="corrupt") == 1
    assert value(samples, "privatune_runs", status="training") == 1
    stage = "privatune_pipeline_stage_duration_seconds"
    assert value(samples, f"{stage}_sum", stage="adapter") == 95.0
    assert value(samples, "privatune_metrics_collect_errors_total", collector="runs") == 0
    # the database goes away: the scrape still answers, with the last values
    collector.db = Database(url=postgres_url.rsplit("/", 1)[0] + "/privatune_missing_db")
    again = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in collector.collect()
        for s in family.samples
    }
    assert value(again, "privatune_documents_quarantined_total", reason="corrupt") == 1
    assert value(again, "privatune_metrics_collect_errors_total", collector="quarantines") == 1


def test_the_metrics_port_serves_without_a_token_on_loopback(free_tcp_port):
    import urllib.request

    assert serve_metrics_port(free_tcp_port)
    assert serve_metrics_port(free_tcp_port)  # once per process: a second call is a no-op
    with urllib.request.urlopen(f"http://127.0.0.1:{free_tcp_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "# TYPE privatune_http_requests_total counter" in text
    assert "privatune_uploads_total" in text
