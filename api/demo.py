"""`make demo`: start Dagster and the API on 127.0.0.1, create tenant `acme` and project
`handbook`, upload the bundled sample documents, run the whole graph through Dagster, then ask
three questions over HTTP and print the grounded answers with their citations."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from resources.clamd_local import start_clamd

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data" / "acme-handbook"
# The demo tenant's owner, a person who signs in (the portal; POST /v1/auth/sign-in).
DEMO_OWNER = "owner@acme.example.com"
DEMO_PASSWORD = "acme demo handbook 2026"
QUESTIONS = [
    "How many days of annual leave do employees get?",
    "What is the deadline for submitting expense claims?",
    "Who should I contact if my laptop is stolen?",
]


def _wait(url: str, what: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its log above")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f} s")


def _wait_for_code_location(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """The webserver answers before it has loaded our code location; wait for the job."""
    from resources.orchestrator import DagsterOrchestrator, OrchestratorError

    deadline = time.time() + timeout
    while True:
        try:
            DagsterOrchestrator(url=url, timeout=5).selector()
            return
        except OrchestratorError as exc:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(
                    f"Dagster did not load the privatune code location: {exc}"
                ) from exc
            time.sleep(1)


def instance_config() -> str:
    """dagster.postgres.yaml when DAGSTER_PG_HOST is set (production-like), else SQLite."""
    return "dagster.postgres.yaml" if os.environ.get("DAGSTER_PG_HOST") else "dagster.yaml"


@contextmanager
def services(home: Path, dagster_port: int, api_port: int) -> Iterator[None]:
    """clamd (unless PRIVATUNE_CLAMD points at one already), Dagster and the API, stopped on exit."""
    with ExitStack() as stack:
        clamd = os.environ.get("PRIVATUNE_CLAMD")
        if not clamd:
            # A demo clamd knows only the EICAR test signatures; production uses freshclam's.
            clamd = stack.enter_context(start_clamd(home / "clamd")).address
        procs = start_services(home, dagster_port, api_port, {"PRIVATUNE_CLAMD": clamd})
        stack.callback(stop_services, procs)
        yield


def start_services(
    home: Path, dagster_port: int, api_port: int, extra_env: dict[str, str] | None = None
) -> list[subprocess.Popen]:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / instance_config(), dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "PRIVATUNE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "PRIVATUNE_DAGSTER_URL": f"http://127.0.0.1:{dagster_port}",
        **(extra_env or {}),
    }
    bin_dir = Path(sys.executable).parent
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    # Own process group with SIGINT restored: `dagster dev` started from a script ignores
    # SIGINT otherwise and can hang on SIGTERM.
    # The children keep their own copies of the log file descriptors.
    with open(logs / "dagster.log", "w") as dagster_log, open(logs / "api.log", "w") as api_log:
        dagster = subprocess.Popen(
            [
                str(bin_dir / "dagster"),
                "dev",
                "-w",
                str(ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(dagster_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=dagster_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        api = subprocess.Popen(
            [
                str(bin_dir / "uvicorn"),
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--no-access-log",  # the API logs each request itself, without query strings
            ],
            cwd=ROOT,
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    procs = [dagster, api]
    try:
        _wait(f"http://127.0.0.1:{api_port}/health", "the API", api)
        _wait(f"http://127.0.0.1:{dagster_port}/server_info", "Dagster", dagster)
        _wait_for_code_location(f"http://127.0.0.1:{dagster_port}", dagster)
    except BaseException:
        stop_services(procs)
        raise
    return procs


def stop_services(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def operator_token() -> str:
    """The installation's operator token: PRIVATUNE_ADMIN_TOKEN, or one made for this demo
    (the services started here inherit it)."""
    token = os.environ.get("PRIVATUNE_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    os.environ["PRIVATUNE_ADMIN_TOKEN"] = token
    return token


def run_demo(
    api: str, dagster_url: str, train_steps: int | None, eval_questions: int | None
) -> int:
    http = httpx.Client(base_url=api, timeout=600)
    created = http.post(
        "/v1/tenants",
        json={"slug": "acme", "name": "Acme Robotics Ltd", "owner_email": DEMO_OWNER},
        headers={"Authorization": f"Bearer {os.environ['PRIVATUNE_ADMIN_TOKEN']}"},
    )
    created.raise_for_status()
    key = created.json()["api_key"]
    http.headers["Authorization"] = f"Bearer {key}"
    print(f"tenant acme created (by the operator); owner API key {key[:12]}...")
    invitation = created.json().get("invitation") or {}
    if invitation.get("accept_url"):
        token = invitation["accept_url"].split("token=", 1)[1]
        accepted = httpx.post(
            f"{api}/v1/invitations/accept",
            json={"token": token, "password": DEMO_PASSWORD, "display_name": "Demo Owner"},
        )
        accepted.raise_for_status()
        print(f"owner {DEMO_OWNER} accepted the invitation (password: {DEMO_PASSWORD})")
    http.post(
        "/v1/projects", json={"slug": "handbook", "name": "Employee handbook"}
    ).raise_for_status()
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    upload = http.post(
        "/v1/projects/handbook/documents",
        files=[("files", (p.name, p.read_bytes())) for p in files],
    )
    upload.raise_for_status()
    print(f"uploaded {upload.json()['created']} documents: {', '.join(p.name for p in files)}")

    body = {
        k: v
        for k, v in {"train_steps": train_steps, "eval_max_questions": eval_questions}.items()
        if v
    }
    rights = http.put(
        "/v1/projects/handbook/data-rights",
        json={"confirmed_by": "demo", "statement": "Acme's own sample handbook (fictional)."},
    )
    rights.raise_for_status()
    run = http.post("/v1/projects/handbook/runs", json=body)
    run.raise_for_status()
    run_id = run.json()["id"]
    print(f"run {run_id} submitted to Dagster ({run.json()['dagster_run_id']})")
    seen, started = 0, time.time()
    while True:
        state = http.get(f"/v1/projects/handbook/runs/{run_id}").json()
        for event in state["events"][seen:]:
            print(f"  [{time.time() - started:6.1f} s] {event['message']}")
        seen = len(state["events"])
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(3)
    if state["status"] != "succeeded":
        print(
            f"run {state['status']}: {state['error']}; open {dagster_url}/runs/{state['dagster_run_id']}"
        )
        return 1
    print("\nstage timings:")
    for event in state["events"]:
        if event["kind"] == "stage_finished":
            print(f"  {event['stage']:<22} {event['data']['seconds']:8.1f} s")

    documents = http.get("/v1/projects/handbook/documents").json()
    failed = [d for d in documents if d["status"] == "failed"]
    print(f"\ndocuments: {len(documents)} uploaded, {len(failed)} failed")
    evaluations = http.get("/v1/projects/handbook/evaluations").json()
    if evaluations:
        latest = evaluations[0]
        print(
            f"evaluation of adapter {latest['adapter_version']} on {latest['questions']} gold "
            f"questions (vs {latest['compared_with']}): promotion gate "
            + ("passed" if latest["passed"] else "blocked: " + "; ".join(latest["reasons"]))
        )
        keys = (
            "semantic_similarity",
            "fuzzy_match",
            "refusal_accuracy",
            "citation_accuracy",
            "unsupported_claim_rate",
            "latency_p95_s",
        )
        print(f"  {'system':<10}" + "".join(f"{k.replace('_', ' '):>24}" for k in keys))
        for system, figures in latest["summary"].items():
            print(f"  {system:<10}" + "".join(f"{figures.get(k, 0.0):>24.3f}" for k in keys))
    deployments = http.get("/v1/projects/handbook/deployments").json()
    active = next((d for d in deployments if d["status"] == "active"), None)
    if active is None:
        print("\nno active deployment: the promotion gate blocked the adapter (see above)")
        return 1
    print(f"\nactive deployment {active['model']} (runtime {active['runtime']['kind']})\n")

    for question in QUESTIONS:
        answer = http.post(
            "/v1/chat/completions",
            json={
                "model": "acme/handbook",
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 80,
            },
        )
        answer.raise_for_status()
        body = answer.json()
        print(f"Q: {question}")
        print(f"A: {body['choices'][0]['message']['content']}")
        if not body["privatune"]["grounded"]:
            print("   (refused: low retrieval confidence)")
        for c in body["citations"]:
            print(
                f"   cited: {c['filename']}, page {c['page']}, chars {c['start']}-{c['end']} (score {c['score']:.2f})"
            )
        print()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=str(ROOT / ".privatune" / "demo"))
    parser.add_argument(
        "--dagster-port", type=int, default=int(os.environ.get("DEMO_DAGSTER_PORT", 3000))
    )
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("DEMO_API_PORT", 8000)))
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-questions", type=int, default=None)
    parser.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leave Dagster and the API running at the end (default: yes in a terminal, no otherwise)",
    )
    args = parser.parse_args()
    home = Path(args.home).resolve()
    if home.exists():
        shutil.rmtree(home)  # a fresh tenant each time: the demo shows the whole path
    home.mkdir(parents=True)
    dagster_url = f"http://127.0.0.1:{args.dagster_port}"
    print(
        f"starting clamd, Dagster ({dagster_url}) and the API (http://127.0.0.1:{args.api_port}); logs in {home / 'logs'}"
    )
    operator_token()
    with services(home, args.dagster_port, args.api_port):
        code = run_demo(
            f"http://127.0.0.1:{args.api_port}", dagster_url, args.train_steps, args.eval_questions
        )
        print(
            f"Dagster UI: {dagster_url}/assets (asset graph, partition acme__handbook, runs, checks)"
        )
        print(f"API docs:   http://127.0.0.1:{args.api_port}/schema/openapi.json")
        print(
            f"Portal:     http://127.0.0.1:{args.api_port}/ (sign in as {DEMO_OWNER}, "
            f"password: {DEMO_PASSWORD})"
        )
        keep = args.keep if args.keep is not None else sys.stdin.isatty()
        if keep:
            print("services keep running; press Ctrl-C to stop them")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return code


if __name__ == "__main__":
    sys.exit(main())
