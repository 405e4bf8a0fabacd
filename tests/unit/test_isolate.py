from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import docx
import pymupdf
import pytest

from assets.normalization.extract import Extraction, ExtractionError, extract
from assets.normalization.isolate import ExtractionPool, extract_isolated


def misbehave(data: bytes, doc_type: str, **kwargs: Any) -> Extraction:
    """Worker target for these tests: extract(), or a parser failing the way `doc_type` says."""
    if doc_type == "hang":
        time.sleep(600)
    elif doc_type == "hog":
        chunks = []
        while True:  # touched, not just reserved: a real hog
            chunks.append(bytearray(64 * 1024 * 1024))
    elif doc_type == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif doc_type == "oom-killed":
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    elif doc_type == "exit":
        os._exit(3)
    elif doc_type == "bug":
        raise ValueError("parser bug")
    return extract(data, doc_type, **kwargs)


@pytest.fixture(scope="module")
def pool() -> Iterator[ExtractionPool]:
    with ExtractionPool(1, target=f"{__name__}:misbehave") as pool:
        yield pool


def _scanned_pdf() -> bytes:
    source = pymupdf.open()
    page = source.new_page()
    page.insert_textbox(
        pymupdf.Rect(72, 72, 540, 400),
        "Forklift training is renewed every twelve months.",
        fontsize=14,
    )
    pixmap = page.get_pixmap(dpi=150)
    scan = pymupdf.open()
    scan.new_page().insert_image(page.rect, pixmap=pixmap)
    return scan.tobytes()


def _text_pdf() -> bytes:
    document = pymupdf.open()
    for text in ["Annual leave is 25 days.", "Sick leave is unlimited."]:
        document.new_page().insert_text((72, 72), text)
    document.set_metadata({"title": "Staff handbook", "creationDate": "D:20240102030405Z"})
    return document.tobytes()


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("Leave policy", 1)
    document.add_paragraph("Employees get 25 days.")
    document.sections[0].footer.paragraphs[0].text = "Acme Ltd"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "doc_type"),
    [
        pytest.param(_text_pdf(), "pdf", id="pdf"),
        pytest.param(_scanned_pdf(), "pdf", id="scanned-pdf"),
        pytest.param(_docx(), "docx", id="docx"),
        pytest.param(
            b"<html><body><h1>Hi</h1><p>Caf\xc3\xa9 \xed\xa0\x80</p></body></html>",
            "html",
            id="html",
        ),
        pytest.param("lone \ud800 surrogate".encode("utf-8", "surrogatepass"), "txt", id="txt"),
    ],
)
def test_isolated_extraction_equals_in_process(data: bytes, doc_type: str) -> None:
    assert extract_isolated(data, doc_type) == extract(data, doc_type)


def test_isolated_extraction_passes_options() -> None:
    with pytest.raises(ExtractionError) as raised:
        extract_isolated(_scanned_pdf(), "pdf", ocr=False)

    assert raised.value.reason == "no_text"


@pytest.mark.parametrize("doc_type", ["unknown", ""])
def test_isolated_extraction_errors_keep_their_reason(doc_type: str) -> None:
    with pytest.raises(ExtractionError) as raised:
        extract_isolated(b"bytes", doc_type)

    assert raised.value.reason == "unsupported_type"


def _failure(pool: ExtractionPool, doc_type: str, **options: Any) -> ExtractionError:
    with pytest.raises(ExtractionError) as raised:
        pool.extract(b"x", doc_type, **options)
    return raised.value


def _recovers(pool: ExtractionPool) -> None:
    assert pool.extract(b"still here", "txt").text == "still here"


def test_hanging_parser_times_out_within_the_limit(pool: ExtractionPool) -> None:
    started = time.monotonic()

    error = _failure(pool, "hang", timeout_s=1)

    assert error.reason == "timeout"
    assert time.monotonic() - started < 5
    _recovers(pool)


def test_memory_hog_hits_the_resource_limit(pool: ExtractionPool) -> None:
    workers = pool.workers_started

    error = _failure(pool, "hog", memory_mb=1024)

    assert error.reason == "resource_limit"
    _recovers(pool)
    assert pool.workers_started == workers + 1  # the exhausted worker was replaced


def test_document_needing_more_memory_than_allowed_is_a_resource_limit() -> None:
    # The worker's interpreter alone is larger than 100 MB of address space, so
    # the first allocation of the real extractor fails.
    with pytest.raises(ExtractionError) as raised:
        extract_isolated(_scanned_pdf(), "pdf", memory_mb=100)

    assert raised.value.reason == "resource_limit"
    assert extract_isolated(_text_pdf(), "pdf").pages[0].text.strip()


@pytest.mark.parametrize(
    ("doc_type", "reason", "message"),
    [
        ("segfault", "crashed", "SIGSEGV"),
        ("exit", "crashed", "status 3"),
        ("oom-killed", "resource_limit", "killed"),
        ("bug", "crashed", "ValueError: parser bug"),
    ],
)
def test_dying_worker_is_reported_and_replaced(
    pool: ExtractionPool, doc_type: str, reason: str, message: str
) -> None:
    error = _failure(pool, doc_type)

    assert error.reason == reason
    assert message in error.message
    _recovers(pool)


def test_pool_serves_concurrent_callers() -> None:
    results: list[str] = []
    with ExtractionPool(2) as pool:
        threads = [
            threading.Thread(
                target=lambda n=n: results.append(pool.extract(f"doc {n}".encode(), "txt").text)
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(results) == [f"doc {n}" for n in range(4)]
        assert pool.workers_started <= 2


def test_worker_is_recycled_after_its_task_quota() -> None:
    with ExtractionPool(1, max_tasks_per_worker=2) as pool:
        for n in range(3):
            pool.extract(f"doc {n}".encode(), "txt")

        assert pool.workers_started == 2


def test_closed_pool_refuses_work() -> None:
    pool = ExtractionPool(1)
    pool.close()

    with pytest.raises(RuntimeError):
        pool.extract(b"x", "txt")
