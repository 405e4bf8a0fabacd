"""Ingestion throughput: our onboarding path against raw text extraction, same files, same run.

Ours is what a tenant's upload goes through: sniff the type, extract in an
isolated worker with OCR on, normalise each page, drop running headers and
footers, and describe the document (language included). The baseline is the
least anyone could do: pymupdf's page.get_text() for PDFs, python-docx
paragraphs for DOCX. Every file must end extracted or with an ExtractionError;
anything else is counted under "bugs".

    .venv/bin/python bench/ingest.py [--corpora ../shared/corpora] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docx
import pymupdf

from assets.normalization.extract import ExtractionError, extract
from assets.normalization.isolate import ExtractionPool, extract_isolated
from assets.normalization.normalize import (
    document_metadata,
    normalize_text,
    remove_repeated_lines,
)
from assets.normalization.sniff import sniff_type

_DEFAULT_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
_FOLDERS = ("pdfjs", "docx")


def _baseline(data: bytes, name: str) -> None:
    if name.lower().endswith(".docx"):
        document = docx.Document(io.BytesIO(data))
        "\n".join(paragraph.text for paragraph in document.paragraphs)
        return
    with pymupdf.open(stream=data, filetype="pdf") as document:
        for page in document:
            page.get_text()


def _ours(data: bytes, name: str, timeout_s: float, memory_mb: int, ocr: bool) -> dict[str, Any]:
    extraction = extract_isolated(
        data, sniff_type(data, name), timeout_s=timeout_s, memory_mb=memory_mb, ocr=ocr
    )
    pages = [normalize_text(page.text) for page in extraction.pages]
    pages, removed = remove_repeated_lines(pages)
    metadata = document_metadata(extraction, pages)
    rejected = extraction.metadata.get("ocr_rejected_pages", "")
    return {
        "pages": len(pages),
        "ocr_pages": metadata["ocr_pages"],
        # OCR'd but read below the confidence floor, so left as they were.
        "ocr_rejected_pages": len(rejected.split(",")) if rejected else 0,
        "repeated_lines_removed": len(removed),
        "language": metadata["language"],
    }


def _rates(seconds: float, documents: int, size: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "docs_per_s": round(documents / seconds, 2) if seconds else 0.0,
        "mb_per_s": round(size / 1e6 / seconds, 3) if seconds else 0.0,
    }


def _isolation_costs() -> dict[str, float]:
    """What a worker costs to start, and what isolating one document adds once it runs."""
    started = time.perf_counter()
    with ExtractionPool(1) as pool:
        pool.extract(b"warm-up", "txt")
        start_s = time.perf_counter() - started
        trips = []
        for _ in range(50):
            before = time.perf_counter()
            pool.extract(b"a short note", "txt")
            trips.append(time.perf_counter() - before)
    in_process = []
    for _ in range(50):
        before = time.perf_counter()
        extract(b"a short note", "txt")
        in_process.append(time.perf_counter() - before)
    return {
        "worker_start_s": round(start_s, 3),
        "round_trip_ms": round(statistics.median(trips) * 1000, 3),
        "in_process_ms": round(statistics.median(in_process) * 1000, 3),
    }


def run(corpora: Path, limit: int | None, timeout_s: float, memory_mb: int) -> dict[str, Any]:
    files = [path for folder in _FOLDERS for path in sorted((corpora / folder).iterdir())]
    files = files[:limit] if limit else files
    isolation = _isolation_costs()
    # One-time costs outside the timings: the shared pool's first worker, the language model.
    _ours(b"A warm-up note, long enough to tell its language.", "x.txt", timeout_s, memory_mb, True)

    outcomes: Counter[str] = Counter()
    bugs: list[dict[str, str]] = []
    timings: list[dict[str, Any]] = []
    totals = Counter[str]()
    ours_s = ours_no_ocr_s = baseline_s = 0.0
    baseline_failures = 0
    size = 0
    for path in files:
        data = path.read_bytes()
        size += len(data)

        started = time.perf_counter()
        try:
            _baseline(data, path.name)
        except Exception:
            baseline_failures += 1
        baseline_s += time.perf_counter() - started

        started = time.perf_counter()
        record: dict[str, Any] = {"file": f"{path.parent.name}/{path.name}"}
        try:
            record.update(_ours(data, path.name, timeout_s, memory_mb, ocr=True))
            record["outcome"] = "extracted"
        except ExtractionError as error:
            record["outcome"] = error.reason
            if error.reason == "crashed":  # the worker reports extractor exceptions this way
                bugs.append({"file": record["file"], "error": error.message})
        except Exception as error:
            record["outcome"] = "bug"
            bugs.append({"file": record["file"], "error": repr(error)})
        record["seconds"] = round(time.perf_counter() - started, 3)
        ours_s += record["seconds"]
        outcomes[record["outcome"]] += 1
        for key in ("pages", "ocr_pages", "ocr_rejected_pages", "repeated_lines_removed"):
            totals[key] += record.get(key, 0)
        timings.append(record)

        started = time.perf_counter()
        with contextlib.suppress(ExtractionError):
            _ours(data, path.name, timeout_s, memory_mb, ocr=False)
        ours_no_ocr_s += time.perf_counter() - started

    documents = len(files)
    return {
        "corpora": [str(corpora / folder) for folder in _FOLDERS],
        "documents": documents,
        "bytes": size,
        "ours": _rates(ours_s, documents, size),
        "ours_without_ocr": _rates(ours_no_ocr_s, documents, size),
        "baseline": {**_rates(baseline_s, documents, size), "failures": baseline_failures},
        # How many times longer our path takes than the baseline.
        "ratio": round(ours_s / baseline_s, 2) if baseline_s else None,
        "ratio_without_ocr": round(ours_no_ocr_s / baseline_s, 2) if baseline_s else None,
        "outcomes": dict(outcomes.most_common()),
        "bugs": bugs,
        "pages": dict(totals),
        "isolation": isolation,
        "slowest": sorted(timings, key=lambda record: -record["seconds"])[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=_DEFAULT_CORPORA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--timeout-s", type=float, default=120)
    parser.add_argument("--memory-mb", type=int, default=2048)
    arguments = parser.parse_args()
    pymupdf.TOOLS.mupdf_display_errors(False)  # the baseline's complaints; ours are quiet
    pymupdf.TOOLS.mupdf_display_warnings(False)
    result = run(arguments.corpora, arguments.limit, arguments.timeout_s, arguments.memory_mb)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
