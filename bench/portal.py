"""The portal's heaviest screens in Chromium: time to first byte and full load of the documents
screen with 1,000 documents, a run page with 2,000 loss points and an evaluation report, each
beside the JSON API answer carrying the same data fetched in the same browser (the baseline:
what the data costs without the page), and the database queries each page load makes (no page
may make more than one query per kind of row).

    .venv/bin/python bench/portal.py [--documents 1000] [--points 2000] [--repeat 5]
        [--out bench/results/portal.json]

How: Dagster and the API start as `make demo` starts them (PostgreSQL when it answers on
127.0.0.1:5432, otherwise SQLite), the demo corpus goes through the whole pipeline once (a short
training run, every gold question evaluated), so the documents, the evaluation and its report are
real. Then the rows a bigger project would have are added through the repository: documents up to
`--documents` (rows only; they are listed, not opened) and a training run with `--points` loss
points and a validation loss every 100 steps. The API is then served again in this process
(uvicorn in a thread) so that every SQL statement a page load makes can be counted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import httpx  # noqa: E402

from api.demo import SAMPLES, start_services, stop_services  # noqa: E402
from resources.clamd_local import start_clamd  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench portal lanterns 2026"
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database(stack: ExitStack, home: Path) -> tuple[str, str]:
    """A throw-away PostgreSQL database when one answers, else a SQLite file."""
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"privatune_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        return f"sqlite:///{home / 'privatune.db'}", "sqlite"

    def drop() -> None:
        from resources.database import _engines

        for url, engine in list(_engines.items()):
            if url.endswith(f"/{name}"):
                engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    stack.callback(drop)
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", "postgresql"


def run_pipeline(api: str, operator: str) -> dict:
    """The demo corpus through the pipeline; returns the tenant's owner key and ids."""
    http = httpx.Client(base_url=api, timeout=600)
    made = http.post(
        "/v1/tenants",
        json={"slug": "bench", "name": "Bench", "owner_email": "owner@bench.example.com"},
        headers={"Authorization": f"Bearer {operator}"},
    )
    made.raise_for_status()
    key = made.json()["api_key"]
    token = made.json()["invitation"]["accept_url"].split("token=", 1)[1]
    http.post(
        "/v1/invitations/accept", json={"token": token, "password": PASSWORD}
    ).raise_for_status()
    http.headers["Authorization"] = f"Bearer {key}"
    http.post("/v1/projects", json={"slug": "handbook"}).raise_for_status()
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    http.post(
        "/v1/projects/handbook/documents",
        files=[("files", (p.name, p.read_bytes())) for p in files],
    ).raise_for_status()
    http.put("/v1/projects/handbook/data-rights", json={"confirmed_by": "bench"}).raise_for_status()
    run = http.post("/v1/projects/handbook/runs", json={"train_steps": 4, "eval_max_questions": 0})
    run.raise_for_status()
    started = time.time()
    while True:
        state = http.get(f"/v1/projects/handbook/runs/{run.json()['id']}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(3)
    if state["status"] != "succeeded":
        raise SystemExit(f"the pipeline run {state['status']}: {state.get('error')}")
    evaluation = http.get("/v1/projects/handbook/evaluations").json()[0]
    return {
        "key": key,
        "run_id": run.json()["id"],
        "documents": len(files),
        "evaluation_id": evaluation["id"],
        "evaluation_questions": evaluation["questions"],
        "pipeline_seconds": round(time.time() - started, 1),
    }


def seed(database_url: str, documents: int, points: int) -> dict:
    """Rows of a bigger project: documents up to `documents`, a run with `points` loss points."""
    from resources.database import Database
    from resources.repository import TenantScope, tenant_by_slug

    db = Database(url=database_url)
    with db.session() as session:
        tenant = tenant_by_slug(session, "bench")
        assert tenant is not None
        scope = TenantScope(session, tenant.id)
        project = scope.project("handbook")
        assert project is not None
        have = len(scope.documents(project.id))
        statuses = ["ready"] * 8 + ["quarantined", "excluded"]
        for i in range(max(0, documents - have)):
            sha = uuid.uuid4().hex * 2
            scope.add_document(
                project.id,
                filename=f"policy-{i:04d}.pdf",
                sha256=sha,
                size_bytes=10_000 + i,
                declared_type="application/pdf",
                detected_type="pdf",
                object_key=f"tenants/bench/projects/handbook/raw/{sha}",
                status=statuses[i % len(statuses)],
                failure_reason="empty: the file has no text" if i % 10 == 8 else None,
                page_count=1 + i % 20,
                word_count=300 + i,
            )
        run = scope.add_run(
            project.id, "training", {"ops": {"adapter": {"config": {"max_steps": points}}}}
        )
        run.status = "succeeded"
        scope.add_run_event(run.id, "stage_started", "adapter started", stage="adapter")
        for step in range(1, points + 1):
            loss = 3.0 * (0.999**step) + 0.05 * ((step * 7919) % 13) / 13
            scope.add_run_event(
                run.id,
                "train_step",
                f"step {step}/{points} loss {loss:.4f}",
                stage="adapter",
                data={
                    "step": step,
                    "steps": points,
                    "loss": loss,
                    "lr": 5e-4,
                    "tokens_per_second": 900.0,
                    "eta_seconds": (points - step) * 0.5,
                },
            )
            if step % 100 == 0:
                scope.add_run_event(
                    run.id,
                    "validation",
                    f"validation loss {loss + 0.1:.4f}",
                    stage="adapter",
                    data={"step": step, "epoch": step // 100, "loss": loss + 0.1},
                )
        scope.add_run_event(
            run.id,
            "stage_finished",
            "adapter finished",
            stage="adapter",
            data={"seconds": points * 0.5},
        )
        return {"run_id": run.id, "documents": len(scope.documents(project.id))}


class QueryCounter:
    """Every SQL statement the in-process API sends."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, *_: object) -> None:
        with self.lock:
            self.count += 1

    def take(self) -> int:
        with self.lock:
            n, self.count = self.count, 0
            return n


def serve_in_process(
    database_url: str, env: dict[str, str], port: int
) -> tuple[object, QueryCounter]:
    import uvicorn
    from sqlalchemy import event

    os.environ.update(env)
    os.environ["PRIVATUNE_DATABASE_URL"] = database_url
    from resources.settings import get_settings

    get_settings.cache_clear()
    from api.app import create_app
    from resources.database import engine_for

    counter = QueryCounter()
    event.listen(engine_for(database_url), "before_cursor_execute", counter)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server, counter
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("the in-process API did not start")


NAVIGATION = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {ttfb_ms: n.responseStart - n.requestStart, load_ms: n.loadEventEnd - n.startTime,
          bytes: n.transferSize};
}"""

FETCH = """async (url) => {
  const t0 = performance.now();
  const r = await fetch(url, {credentials: 'same-origin'});
  const t1 = performance.now();
  const body = await r.text();
  const t2 = performance.now();
  return {status: r.status, ttfb_ms: t1 - t0, load_ms: t2 - t0, bytes: body.length};
}"""


def measure(base: str, screens: list[dict], repeat: int, counter: QueryCounter) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_context(base_url=base).new_page()
        page.goto("/sign-in")
        page.get_by_label("E-mail").fill("owner@bench.example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("load")
        for screen in screens:
            page.goto(screen["page"], wait_until="load")  # warm: templates compiled, caches
            page.evaluate(FETCH, screen["baseline"])
            loads, fetches, queries = [], [], []
            for _ in range(repeat):
                counter.take()
                page.goto(screen["page"], wait_until="load")
                loads.append(page.evaluate(NAVIGATION))
                queries.append(counter.take())
                fetches.append(page.evaluate(FETCH, screen["baseline"]))
            ours = statistics.median(x["load_ms"] for x in loads)
            base_load = statistics.median(x["load_ms"] for x in fetches)
            out.append(
                {
                    "screen": screen["name"],
                    "page": screen["page"],
                    "ttfb_ms": round(statistics.median(x["ttfb_ms"] for x in loads), 1),
                    "full_load_ms": round(ours, 1),
                    "page_bytes": loads[-1]["bytes"],
                    "queries_per_load": max(queries),
                    "baseline": screen["baseline"],
                    "baseline_ttfb_ms": round(statistics.median(x["ttfb_ms"] for x in fetches), 1),
                    "baseline_load_ms": round(base_load, 1),
                    "ratio_full_load_to_baseline": round(ours / base_load, 2)
                    if base_load
                    else None,
                    "under_1s": ours < 1000,
                }
            )
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    operator = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-portal-")))
        database_url, dialect = _database(stack, home)
        clamd = stack.enter_context(start_clamd(home / "clamd")).address
        env = {
            "PRIVATUNE_CLAMD": clamd,
            "PRIVATUNE_DATABASE_URL": database_url,
            "PRIVATUNE_ADMIN_TOKEN": operator,
            "PRIVATUNE_HOME": str(home),
        }
        api_port, dagster_port = _free_port(), _free_port()
        procs = start_services(home, dagster_port, api_port, env)
        try:
            made = run_pipeline(f"http://127.0.0.1:{api_port}", operator)
        finally:
            stop_services(procs)
        port = _free_port()
        server, counter = serve_in_process(
            database_url,
            {**env, "PRIVATUNE_DAGSTER_URL": "http://127.0.0.1:9"},
            port,
        )
        base = f"http://127.0.0.1:{port}"
        project = "/t/bench/projects/handbook"
        api = "/v1/projects/handbook"
        try:
            # The same pages with the demo's few rows first: a page whose queries grow with
            # its rows (N+1) shows here as more queries for more rows.
            small = measure(
                base,
                [
                    {
                        "name": "documents",
                        "page": f"{project}/documents",
                        "baseline": f"{api}/documents",
                    },
                    {
                        "name": "run",
                        "page": f"{project}/runs/{made['run_id']}",
                        "baseline": f"{api}/runs/{made['run_id']}",
                    },
                ],
                2,
                counter,
            )
            seeded = seed(database_url, args.documents, args.points)
            screens = [
                {
                    "name": "documents",
                    "page": f"{project}/documents",
                    "baseline": f"{api}/documents",
                },
                {
                    "name": "run",
                    "page": f"{project}/runs/{seeded['run_id']}",
                    "baseline": f"{api}/runs/{seeded['run_id']}",
                },
                {
                    "name": "evaluation report",
                    "page": f"{project}/evaluations/{made['evaluation_id']}",
                    "baseline": f"{api}/evaluations/{made['evaluation_id']}/report?format=json",
                },
                {"name": "projects", "page": "/t/bench/projects", "baseline": "/v1/projects"},
                {"name": "project overview", "page": project, "baseline": f"{api}"},
            ]
            results = measure(base, screens, args.repeat, counter)
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
        few = {r["screen"]: r["queries_per_load"] for r in small}
        for r in results:
            if r["screen"] in few:
                r["queries_per_load_with_few_rows"] = few[r["screen"]]
                r["queries_grow_with_rows"] = r["queries_per_load"] > few[r["screen"]]
    report = {
        "machine": {"cpus": os.cpu_count(), "database": dialect},
        "documents": seeded["documents"],
        "documents_before_seeding": made["documents"],
        "loss_points": args.points,
        "evaluation_questions": made["evaluation_questions"],
        "pipeline_seconds": made["pipeline_seconds"],
        "repeat": args.repeat,
        "screens": results,
        "all_under_1s": all(r["under_1s"] for r in results),
        "no_page_queries_per_row": not any(r.get("queries_grow_with_rows") for r in results),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
