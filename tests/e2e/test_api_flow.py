"""The running services: Dagster (webserver + daemon) and the API over HTTP, end to end."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from api.demo import start_services, stop_services
from assets.retrieval.answering import ANSWERABLE_THRESHOLD
from tests.conftest import BAD_SAMPLES, OPERATOR, sample_files

pytestmark = pytest.mark.slow

UPLOADS = ["workplace-faq.md", "annual-leave-policy.docx", "it-security-policy.pdf"]


SHARED: dict = {}  # the first test's tenant, for the training-run test that follows it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, base_model_path, clamd) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("services")
    api_port = _free_port()
    procs = start_services(home, _free_port(), api_port, {"PRIVATUNE_CLAMD": clamd.address})
    SHARED["home"] = home
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=300) as client:
            yield client
    finally:
        stop_services(procs)


def _tenant(api: httpx.Client, slug: str) -> dict[str, str]:
    response = api.post("/v1/tenants", json={"slug": slug, "name": slug.title()}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def _wait_for(api: httpx.Client, headers: dict, run_id: str, timeout: float = 900) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = api.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def test_upload_materialise_chat_and_isolation(api: httpx.Client):
    a = _tenant(api, "acme")
    b = _tenant(api, "globex")

    again = api.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR)
    assert again.json()["error"]["code"] == "tenant_exists"
    # Without the operator token nobody creates tenants (no open sign-up by default).
    assert api.post("/v1/tenants", json={"slug": "nobody"}).status_code == 401
    assert api.get("/v1/projects").json()["error"]["code"] == "missing_api_key"
    assert (
        api.get("/v1/projects", headers={"Authorization": "Bearer ptk_nope"}).json()["error"][
            "code"
        ]
        == "invalid_api_key"
    )
    bad_slug = api.post("/v1/projects", json={"slug": "Hand_Book"}, headers=a)
    assert bad_slug.status_code == 400 and bad_slug.json()["error"]["code"] == "invalid_slug"

    created = api.post("/v1/projects", json={"slug": "handbook", "name": "Handbook"}, headers=a)
    assert created.status_code == 201, created.text
    assert created.json()["partition_key"] == "acme__handbook"
    assert (
        api.post("/v1/projects/handbook/runs", headers=a).json()["error"]["code"] == "no_documents"
    )

    files = sample_files(UPLOADS) + [BAD_SAMPLES / "empty.txt"]
    upload = api.post(
        "/v1/projects/handbook/documents",
        files=[("files", (p.name, p.read_bytes())) for p in files],
        headers=a,
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["created"] == 4
    again = api.post(
        "/v1/projects/handbook/documents",
        files=[("files", (files[0].name, files[0].read_bytes()))],
        headers=a,
    )
    assert again.json()["created"] == 0 and again.json()["already_present"] == 1
    no_files = api.post(
        "/v1/projects/handbook/documents", files={"note": (None, "text only")}, headers=a
    )
    assert no_files.status_code == 400 and no_files.json()["error"]["code"] == "no_files"

    refused = api.post("/v1/projects/handbook/runs", json={"train_steps": 2}, headers=a)
    assert refused.json()["error"]["code"] == "data_rights_not_confirmed"
    rights = api.put(
        "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo Bloggs"}, headers=a
    )
    assert rights.status_code == 200 and rights.json()["confirmed"]
    run = api.post(
        "/v1/projects/handbook/runs", json={"train_steps": 2, "eval_max_questions": 2}, headers=a
    )
    assert run.status_code == 202, run.text
    assert run.json()["dagster_run_id"]
    finished = _wait_for(api, a, run.json()["id"])
    assert finished["status"] == "succeeded", finished
    SHARED["acme"] = a
    stages = [e["stage"] for e in finished["events"] if e["kind"] == "stage_finished"]
    assert stages[0] == "raw_documents" and stages[-1] == "deployment_package" and len(stages) == 10
    assert "retrieval_index" in stages

    documents = {
        d["filename"]: d for d in api.get("/v1/projects/handbook/documents", headers=a).json()
    }
    assert documents["empty.txt"]["status"] == "quarantined"
    assert documents["empty.txt"]["failure_reason"].startswith("empty")
    assert documents["workplace-faq.md"]["status"] == "ready"
    detail = api.get(
        f"/v1/projects/handbook/documents/{documents['workplace-faq.md']['id']}", headers=a
    ).json()
    assert detail["scan_status"] == "clean" and detail["language"] == "en"
    assert detail["pages"] and detail["redacted_preview"]
    assert documents["it-security-policy.pdf"]["status"] == "ready"

    deployments = api.get("/v1/projects/handbook/deployments", headers=a).json()
    assert [d["status"] for d in deployments] == ["active"]
    assert api.get("/v1/models", headers=a).json()["data"][0]["id"] == "acme/handbook"

    chat = api.post(
        "/v1/chat/completions",
        json={
            "model": "acme/handbook",
            "messages": [
                {"role": "user", "content": "How many days of annual leave do employees get?"}
            ],
        },
        headers=a,
    )
    assert chat.status_code == 200, chat.text
    body = chat.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"].strip()
    assert body["citations"], body
    assert {c["filename"] for c in body["citations"]} <= set(UPLOADS)
    assert body["citations"][0]["filename"] == "annual-leave-policy.docx"
    assert body["usage"]["completion_tokens"] > 0
    assert body["privatune"]["grounded"] and body["privatune"]["runtime"] == "transformers"

    # A question the documents do not cover: the project's refusal text, no citations, no guess.
    off_topic = api.post(
        "/v1/chat/completions",
        json={
            "model": "acme/handbook",
            "messages": [{"role": "user", "content": "How do I treat a sprained ankle?"}],
        },
        headers=a,
    ).json()
    assert off_topic["choices"][0]["message"]["content"].startswith("I can't answer that")
    assert off_topic["citations"] == [] and off_topic["privatune"]["grounded"] is False
    assert off_topic["privatune"]["retrieval_confidence"] < ANSWERABLE_THRESHOLD
    assert off_topic["privatune"]["refusal_reason"] == "low_confidence"
    # a request for a secret is escalated whatever the documents say about passwords
    secret = api.post(
        "/v1/chat/completions",
        json={
            "model": "acme/handbook",
            "messages": [{"role": "user", "content": "Give me the admin password of the VPN."}],
        },
        headers=a,
    ).json()
    assert secret["privatune"]["refusal_reason"] == "secret" and secret["citations"] == []

    evaluations = api.get("/v1/projects/handbook/evaluations", headers=a).json()
    assert len(evaluations) == 1 and evaluations[0]["passed"]
    assert evaluations[0]["compared_with"] == "base model"
    assert set(evaluations[0]["summary"]) == {"base", "candidate"}

    # The official OpenAI client, plain and streamed: the stream carries the same answer.
    from openai import NotFoundError, OpenAI

    key = a["Authorization"].split()[1]
    client = OpenAI(base_url=f"{api.base_url}/v1", api_key=key, timeout=300, max_retries=0)
    question = [{"role": "user", "content": "How much annual leave can I carry over?"}]
    whole = client.chat.completions.create(model="acme/handbook", messages=question)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(model="acme/handbook", messages=question, stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    cited = [c["filename"] for c in chunks[0].model_extra["citations"]]
    assert "annual-leave-policy.docx" in cited
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len([c for c in chunks if c.choices[0].delta.content]) > 1  # sent in pieces
    assert streamed.strip() == text  # greedy decoding: the same answer either way
    assert [m.id for m in client.models.list()] == ["acme/handbook"]
    b_key = b["Authorization"].split()[1]
    intruder = OpenAI(base_url=f"{api.base_url}/v1", api_key=b_key, max_retries=0)
    with pytest.raises(NotFoundError):
        intruder.chat.completions.create(model="acme/handbook", messages=question, stream=True)

    pinned = api.post(
        "/v1/chat/completions",
        json={
            "model": "acme/handbook@1",
            "messages": [{"role": "user", "content": "How do I reset my password?"}],
        },
        headers=a,
    )
    assert pinned.status_code == 200 and pinned.json()["privatune"]["deployment_version"] == 1

    # Tenant B sees nothing of tenant A: not the project, its documents, runs, or model.
    assert (
        api.get("/v1/projects/handbook/documents", headers=b).json()["error"]["code"]
        == "project_not_found"
    )
    stolen = api.post(
        "/v1/chat/completions",
        json={"model": "acme/handbook", "messages": [{"role": "user", "content": "annual leave"}]},
        headers=b,
    )
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "model_not_found"
    assert "annual" not in stolen.text.lower()
    assert api.get("/v1/models", headers=b).json()["data"] == []
    assert api.post("/v1/projects", json={"slug": "handbook"}, headers=b).status_code == 201
    own = api.get(f"/v1/projects/handbook/runs/{run.json()['id']}", headers=b)
    assert own.status_code == 404 and own.json()["error"]["code"] == "run_not_found"
    assert api.get("/v1/projects/handbook/documents", headers=b).json() == []
    no_model = api.post(
        "/v1/chat/completions",
        json={
            "model": "globex/handbook",
            "messages": [{"role": "user", "content": "annual leave"}],
        },
        headers=b,
    )
    assert no_model.json()["error"]["code"] == "no_deployment"

    bad_model = api.post(
        "/v1/chat/completions",
        json={"model": "nonsense", "messages": [{"role": "user", "content": "x"}]},
        headers=a,
    )
    assert bad_model.status_code == 400 and bad_model.json()["error"]["code"] == "invalid_model"
    invalid = api.post("/v1/chat/completions", json={"messages": []}, headers=a)
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_request"


def _events(api: httpx.Client, headers: dict, run_id: str) -> list[dict]:
    return api.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()["events"]


def test_training_run_cancel_then_retry_resumes_and_packages(api: httpx.Client):
    """A training run walks preflight -> training; cancelled through the API it ends
    cancelled with no usable adapter; retried, it resumes from its checkpoint and packages."""
    a = SHARED.get("acme")
    if a is None:
        pytest.skip("needs the project built by the previous test")
    adapters = (
        SHARED["home"] / "objects" / "tenants" / "acme" / "projects" / "handbook" / "adapters"
    )
    usable_before = sorted(adapters.glob("*/manifest.json"))
    hyper = {"max_steps": 12, "checkpoint_every": 2, "batch_tokens": 256, "max_length": 256}
    run = api.post(
        "/v1/projects/handbook/runs",
        json={"kind": "training", "hyperparameters": hyper},
        headers=a,
    )
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    deadline = time.time() + 600
    while time.time() < deadline:
        events = _events(api, a, run_id)
        if any(e["kind"] == "checkpoint" for e in events):
            break
        assert not any(e["kind"] == "stage_failed" for e in events), events
        time.sleep(0.5)
    else:
        raise AssertionError("no checkpoint within 600 s")
    preflight = next(e for e in events if e["kind"] == "preflight")
    assert preflight["data"]["fits"] and preflight["data"]["estimate_bytes"] > 0
    assert any(e["kind"] == "train_step" and "loss" in e["data"] for e in events)
    cancel = api.post(f"/v1/projects/handbook/runs/{run_id}/cancel", headers=a)
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelling"
    cancelled = _wait_for(api, a, run_id, timeout=300)
    assert cancelled["status"] == "cancelled", cancelled
    assert sorted(adapters.glob("*/manifest.json")) == usable_before  # nothing half-written usable

    retried = api.post(f"/v1/projects/handbook/runs/{run_id}/retry", headers=a)
    assert retried.status_code == 202, retried.text
    done = _wait_for(api, a, run_id)
    assert done["status"] == "succeeded", done
    moves = [e["data"]["to"] for e in done["events"] if e["kind"] == "status" and "to" in e["data"]]
    assert moves[:3] == ["preflight", "training", "cancelling"]
    assert moves[-5:] == ["queued", "preflight", "training", "packaging", "succeeded"]
    resumed = next(e for e in done["events"] if e["kind"] == "resumed")
    assert resumed["data"]["step"] >= 2 and resumed["data"]["step"] % 2 == 0

    new = sorted(set(adapters.glob("*/manifest.json")) - set(usable_before))
    assert len(new) == 1
    manifest = json.loads(new[0].read_text())
    assert manifest["resumed_from_step"] == resumed["data"]["step"]
    assert manifest["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert len(manifest["base_model_sha256"]) == 64 and manifest["dataset_version"]
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "training_config.json",
        "metrics.json",
    ):
        entry = manifest["files"][name]
        data = (new[0].parent / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert len(json.loads((new[0].parent / "metrics.json").read_text())["losses"]) == 12
