"""Answer quality on questions the generator did not write, as a tenant gets it, beside the base
model with plain BM25 in the same run.

    .venv/bin/python bench/quality.py CORPUS_DIR [--offtopic FILE ...] [--out FILE]

CORPUS_DIR holds `pages/` (or `sample/`) and `gold.jsonl` (`q`, `a`, `page`), optionally
`refusal.jsonl` (questions the pages do not answer), like ../shared/corpora/gitdocs/ and
bench/corpora/*/. The bench starts clamd, Dagster and the API on free ports (as `make demo`),
creates a tenant and a project with default settings, uploads the pages, runs the whole
pipeline, and then asks every question through the official `openai` client. The anchor is the
untuned base model answering from the top three of 160-word chunks ranked by plain BM25
(`bm25s` with its default English tokenizer) over the same pages, text taken with the plain
extractors (PyMuPDF, BeautifulSoup, the raw file). Scores, for both:

- answer contains the gold answer (case and punctuation folded, text in parentheses ignored);
- fuzzy match of answer and gold answer (rapidfuzz partial ratio, 0-1);
- first citation is the gold page (privatune), and the gold page among the three passages;
- off-topic questions refused or escalated; answerable questions refused.

It also prints the pipeline's time per stage, pages per minute and the peak memory of the
services. JSON on stdout (and in --out)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from api.demo import operator_token, start_services, stop_services  # noqa: E402
from resources.clamd_local import start_clamd  # noqa: E402

DOCUMENT_SUFFIXES = {".html", ".htm", ".md", ".txt", ".pdf", ".docx", ".csv", ".markdown"}
BASELINE_WORDS = 160
_PAREN = re.compile(r"\([^)]*\)")
_PUNCT = re.compile(r"[^\w\s]|_")


def fold(text: str) -> str:
    """Case and punctuation folded, text in parentheses ignored (the gold set's README)."""
    return " ".join(_PUNCT.sub(" ", _PAREN.sub(" ", text.lower())).split())


def contains(answer: str, gold: str) -> bool:
    """The product's own measure (assets.evaluation.metrics.answer_contains), so the bench and
    the evaluation report count alike."""
    from assets.evaluation.metrics import answer_contains

    return bool(answer_contains(answer, gold))


def fuzzy(answer: str, gold: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.partial_ratio(fold(gold), fold(answer)) / 100.0


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus_files(corpus: Path, sample: bool) -> list[Path]:
    folder = corpus / ("sample" if sample else "pages")
    if not folder.is_dir():
        raise SystemExit(f"{folder} does not exist (bench/corpora/build.py builds pages/)")
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakMemory:
    """The largest total RSS of a set of process trees, sampled every second."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_rss(self) -> int:
        import psutil

        total = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self._tree_rss())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- the anchor: base model + plain BM25 --------------------------------------------------


def plain_pages(path: Path) -> list[tuple[int, str]]:
    """(page number, text) with the plain extractor of each format, no clean-up."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pymupdf

        with pymupdf.open(stream=data, filetype="pdf") as doc:
            return [(i + 1, page.get_text()) for i, page in enumerate(doc)]
    if suffix in (".html", ".htm"):
        from bs4 import BeautifulSoup

        return [(1, BeautifulSoup(data, "lxml").get_text(" "))]
    if suffix == ".docx":
        import docx

        return [(1, "\n".join(p.text for p in docx.Document(str(path)).paragraphs))]
    return [(1, data.decode("utf-8", errors="replace"))]


def baseline_answers(files: list[Path], questions: list[str], max_new_tokens: int) -> list[dict]:
    """The base model answering from plain BM25's top three 160-word chunks."""
    import bm25s

    from assets.dataset.prompt import ContextPassage, build_messages
    from resources.chat_engine import get_engine, resolve_base_model

    chunks: list[tuple[str, int, str]] = []
    for path in files:
        for number, text in plain_pages(path):
            words = text.split()
            for start in range(0, len(words), BASELINE_WORDS):
                piece = " ".join(words[start : start + BASELINE_WORDS])
                if piece:
                    chunks.append((path.name, number, piece))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([c[2] for c in chunks], stopwords="en", show_progress=False))
    found, _ = retriever.retrieve(
        bm25s.tokenize(questions, stopwords="en", show_progress=False),
        k=min(3, len(chunks)),
        show_progress=False,
    )
    engine = get_engine(resolve_base_model()[1])
    shown = [[chunks[int(i)] for i in row] for row in found]
    conversations = [
        build_messages(q, [ContextPassage(f"{n}, page {p}", t) for n, p, t in top])
        for q, top in zip(questions, shown, strict=True)
    ]
    generations = engine.generate(conversations, max_new_tokens=max_new_tokens)
    return [
        {"answer": g.text, "pages": [name for name, _, _ in top]}
        for g, top in zip(generations, shown, strict=True)
    ]


# --- privatune through the API --------------------------------------------------------------


def run_pipeline(http: httpx.Client, files: list[Path], project: str) -> dict:
    http.post("/v1/projects", json={"slug": project}).raise_for_status()
    started = time.time()
    for i in range(0, len(files), 50):  # several requests: one body stays small
        batch = files[i : i + 50]
        upload = http.post(
            f"/v1/projects/{project}/documents",
            files=[("files", (p.name, p.read_bytes())) for p in batch],
        )
        upload.raise_for_status()
    uploaded = time.time() - started
    http.put(
        f"/v1/projects/{project}/data-rights",
        json={"confirmed_by": "bench", "statement": "public documentation (bench/quality.py)"},
    ).raise_for_status()
    run = http.post(f"/v1/projects/{project}/runs", json={})
    run.raise_for_status()
    run_id = run.json()["id"]
    while True:
        state = http.get(f"/v1/projects/{project}/runs/{run_id}").json()
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(5)
    stages = {
        e["stage"]: e["data"].get("seconds")
        for e in state["events"]
        if e["kind"] == "stage_finished" and e.get("stage")
    }
    return {
        "status": state["status"],
        "error": state.get("error"),
        "failure": state.get("failure"),
        "upload_seconds": round(uploaded, 1),
        "run_seconds": round(time.time() - started - uploaded, 1),
        "stages": stages,
    }


def ask(client, model: str, question: str, max_tokens: int) -> dict:
    started = time.perf_counter()
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=max_tokens
    )
    extra = response.model_extra or {}
    return {
        "answer": response.choices[0].message.content or "",
        "citations": extra.get("citations") or [],
        "privatune": extra.get("privatune") or {},
        "seconds": time.perf_counter() - started,
    }


def score(gold: list[dict], off: list[dict], answers: list[dict], refusal_texts: list[str]):
    from assets.evaluation.metrics import is_refusal

    def refused(a: dict) -> bool:
        if "privatune" in a:
            return not a["privatune"].get("grounded", True)
        return is_refusal(a["answer"], *refusal_texts) or bool(
            re.search(
                r"\b(?:can't|cannot|unable to|don't know|not (?:in|covered))\b", a["answer"], re.I
            )
        )

    g, o = answers[: len(gold)], answers[len(gold) :]
    n = len(gold) or 1
    out = {
        "answer_contains_gold": round(
            sum(contains(a["answer"], q["a"]) for a, q in zip(g, gold, strict=False)) / n, 3
        ),
        "fuzzy": round(
            sum(fuzzy(a["answer"], q["a"]) for a, q in zip(g, gold, strict=False)) / n, 3
        ),
        "answerable_refused": round(sum(refused(a) for a in g) / n, 3),
        "offtopic_refused": round(sum(refused(a) for a in o) / (len(off) or 1), 3),
    }
    if g and "citations" in g[0]:
        first = [
            bool(a["citations"]) and a["citations"][0]["filename"] == q["page"]
            for a, q in zip(g, gold, strict=False)
        ]
        top3 = [
            q["page"] in {c["filename"] for c in a["citations"][:3]}
            for a, q in zip(g, gold, strict=False)
        ]
        out["first_citation_gold_page"] = round(sum(first) / n, 3)
        out["gold_page_in_top3"] = round(sum(top3) / n, 3)
    elif g:
        out["gold_page_in_top3"] = round(
            sum(q["page"] in a["pages"] for a, q in zip(g, gold, strict=False)) / n, 3
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--sample", action="store_true", help="use sample/ and sample_gold.jsonl")
    parser.add_argument(
        "--offtopic",
        type=Path,
        action="append",
        default=None,
        help="more off-topic questions (default: bench/corpora/offtopic.jsonl)",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--keep-home", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    corpus = args.corpus.resolve()
    files = corpus_files(corpus, args.sample)
    gold = read_jsonl(corpus / ("sample_gold.jsonl" if args.sample else "gold.jsonl"))
    offtopic_files = (
        args.offtopic if args.offtopic is not None else [ROOT / "bench/corpora/offtopic.jsonl"]
    )
    own_off = read_jsonl(corpus / "refusal.jsonl")
    extra_off = [q for f in offtopic_files for q in read_jsonl(f)]
    off = own_off + extra_off
    questions = [q["q"] for q in gold] + [q["q"] for q in off]
    pages = 0
    for path in files:
        if path.suffix.lower() == ".pdf":
            import pymupdf

            with pymupdf.open(path) as doc:
                pages += doc.page_count
        else:
            pages += 1

    home = Path(tempfile.mkdtemp(prefix="privatune-quality-"))
    result: dict = {
        "corpus": corpus.name,
        "files": len(files),
        "pages": pages,
        "gold": len(gold),
        "offtopic": len(off),
    }
    from openai import OpenAI

    from assets.dataset.prompt import DEFAULT_REFUSAL
    from assets.dataset.refusals import DEFAULT_ESCALATION

    with ExitStack() as stack:
        clamd = (
            os.environ.get("PRIVATUNE_CLAMD")
            or stack.enter_context(start_clamd(home / "clamd")).address
        )
        api_port, dagster_port = _free_port(), _free_port()
        operator = operator_token()  # the services inherit it
        procs = start_services(home, dagster_port, api_port, {"PRIVATUNE_CLAMD": clamd})
        stack.callback(stop_services, procs)
        api = f"http://127.0.0.1:{api_port}"
        http = stack.enter_context(httpx.Client(base_url=api, timeout=600))
        key = http.post(
            "/v1/tenants",
            json={"slug": "bench", "name": "Bench"},
            headers={"Authorization": f"Bearer {operator}"},
        ).json()["api_key"]
        http.headers["Authorization"] = f"Bearer {key}"
        with PeakMemory([p.pid for p in procs]) as memory:
            pipeline = run_pipeline(http, files, "corpus")
        pipeline["peak_rss_mb"] = round(memory.peak / 2**20)
        pipeline["pages_per_minute"] = (
            round(pages / (pipeline["run_seconds"] / 60), 1) if pipeline["run_seconds"] else None
        )
        result["pipeline"] = pipeline
        if pipeline["status"] == "succeeded":
            evaluations = http.get("/v1/projects/corpus/evaluations").json()
            if evaluations:
                latest = evaluations[0]
                result["report"] = {
                    "passed": latest["passed"],
                    "reasons": latest["reasons"],
                    "summary": latest["summary"],
                }
            client = OpenAI(base_url=f"{api}/v1", api_key=key, timeout=600)
            answers = [ask(client, "bench/corpus", q, args.max_tokens) for q in questions]
            result["privatune"] = score(gold, off, answers, [DEFAULT_REFUSAL, DEFAULT_ESCALATION])
            result["privatune"]["seconds_per_answer"] = round(
                sum(a["seconds"] for a in answers) / len(answers), 2
            )
            result["privatune"]["own_offtopic_refused"] = score(
                [], own_off, answers[len(gold) : len(gold) + len(own_off)], []
            )["offtopic_refused"]
            result["failures"] = [
                {
                    "q": q["q"],
                    "gold": q["a"],
                    "answer": a["answer"][:300],
                    "cited": [c["filename"] for c in a["citations"][:3]],
                }
                for q, a in zip(gold, answers, strict=False)
                if not contains(a["answer"], q["a"])
            ] + [
                {"q": q["q"], "offtopic_answered": a["answer"][:200]}
                for q, a in zip(off, answers[len(gold) :], strict=False)
                if a["privatune"].get("grounded", True)
            ]
    if args.out:  # what is measured so far survives a baseline that does not finish
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.no_baseline:
        from resources.chat_engine import resolve_base_model

        os.environ.setdefault("PRIVATUNE_HOME", str(home))
        resolve_base_model()
        started = time.perf_counter()
        base = baseline_answers(files, questions, args.max_tokens)
        result["baseline_bm25"] = score(gold, off, base, [DEFAULT_REFUSAL, DEFAULT_ESCALATION])
        result["baseline_bm25"]["seconds_per_answer"] = round(
            (time.perf_counter() - started) / len(questions), 2
        )
    if "privatune" in result and "baseline_bm25" in result:
        result["ratio_answer_contains"] = (
            round(
                result["privatune"]["answer_contains_gold"]
                / result["baseline_bm25"]["answer_contains_gold"],
                2,
            )
            if result["baseline_bm25"]["answer_contains_gold"]
            else None
        )
    if not args.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result.get("pipeline", {}).get("status") == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
