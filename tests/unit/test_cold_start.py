"""A Dagster run worker is a fresh process: what it imports and loads before its first document
is paid by every run. These tests hold the cold-start savings in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assets.quality import score

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_imports_no_model_or_parser_library() -> None:
    found = _run(
        """
        import gc, json, sys
        import pipelines.definitions
        heavy = ["torch", "transformers", "spacy", "presidio_analyzer", "pymupdf", "bs4",
                 "docx", "trafilatura", "minio"]
        print(json.dumps({"loaded": [m for m in heavy if m in sys.modules],
                          "frozen": gc.get_freeze_count()}))
        """
    )
    assert found["loaded"] == []
    # The imported libraries are kept out of the cyclic collector's walks.
    assert found["frozen"] > 10_000


def test_extraction_module_imports_parsers_only_when_a_format_needs_them() -> None:
    found = _run(
        """
        import json, sys
        from assets.normalization.extract import extract
        before = [m for m in ("pymupdf", "bs4", "docx", "trafilatura") if m in sys.modules]
        extract(b"# Title\\n\\nSome text.", "md")
        after_md = [m for m in ("pymupdf", "bs4", "docx") if m in sys.modules]
        print(json.dumps({"before": before, "after_md": after_md}))
        """
    )
    assert found == {"before": [], "after_md": []}


def test_pymupdf_loads_without_its_layout_analyser() -> None:
    found = _run(
        """
        import json, sys
        from assets.normalization.extract import load_pymupdf
        pymupdf = load_pymupdf()
        hidden_now = [m for m in ("pymupdf.layout", "pymupdf4llm") if m in sys.modules]
        print(json.dumps({
            "layout": pymupdf._get_layout is not None,
            "onnx": "onnxruntime" in sys.modules,
            "left_in_sys_modules": hidden_now,
            "same": load_pymupdf() is pymupdf is sys.modules["pymupdf"],
        }))
        """
    )
    assert found == {"layout": False, "onnx": False, "left_in_sys_modules": [], "same": True}


def test_prewarm_loads_the_language_model_here_and_presidio_in_the_worker() -> None:
    found = _run(
        """
        import gc, json, threading, sys
        from assets import warmup
        warmup.prewarm()
        warmup.prewarm()
        names = [t.name for t in threading.enumerate() if t.name.startswith("prewarm-")]
        for thread in threading.enumerate():
            if thread.name.startswith("prewarm-"):
                thread.join(120)
        from assets.pii.worker import worker
        from assets.quality import score
        started = worker().started
        results = worker().screen(["Call Jane Smith on Monday."], "redact", [])
        print(json.dumps({
            "threads": sorted(names),
            "language_model": score._identifier_instance is not None,
            "worker": started,
            "presidio_here": "presidio_analyzer" in sys.modules or "spacy" in sys.modules,
            "redacted": "Jane Smith" not in results[0].text and "<PERSON>" in results[0].text,
            "status": results[0].status,
            "frozen": gc.get_freeze_count() > 0,
        }))
        """
    )
    assert found == {
        "threads": ["prewarm-language-model"],
        "language_model": True,
        "worker": True,
        "presidio_here": False,  # the run's own process never pays for Presidio and spaCy
        "redacted": True,
        "status": "redacted",
        "frozen": True,
    }


def test_pii_worker_gives_the_in_process_results_and_survives_bad_input() -> None:
    from assets.pii.recognizers import CustomRecognizer
    from assets.pii.screen import PiiScreener
    from assets.pii.worker import PiiWorker, PiiWorkerError
    from assets.privacy.screening import screen_texts

    texts = [
        "Jane Smith joined on 3 March.\n\nHer employee id is EMP-123456.",
        "No personal data here.",
        "",
    ]
    custom = [CustomRecognizer(name="employee_id", entity_type="EMPLOYEE_ID", pattern=r"EMP-\d{6}")]
    here = screen_texts(texts, "redact", PiiScreener(custom=custom))
    pool = PiiWorker()
    try:
        there = pool.screen(texts, "redact", custom)
        assert [(s.text, s.status, s.summary) for s in there] == [
            (s.text, s.status, s.summary) for s in here
        ]
        assert "EMP-123456" not in there[0].text and "<EMPLOYEE_ID>" in there[0].text
        with pytest.raises(PiiWorkerError, match="policy"):
            pool.screen(["Jane Smith"], "shred", [])
        assert pool.started  # a bad request costs the request, not the worker
        pool._proc.kill()  # type: ignore[union-attr]
        pool._proc.wait()  # type: ignore[union-attr]
        assert not pool.started
        # a dead worker is started again by the next request
        assert pool.screen(["Jane Smith called."], "redact", [])[0].status == "redacted"
    finally:
        pool.stop()


SAMPLES = [
    "The employee must submit the leave request to the manager two weeks in advance.",
    "Les employés doivent soumettre leur demande de congé deux semaines à l'avance.",
    "Die Mitarbeiter müssen ihren Urlaubsantrag zwei Wochen im Voraus einreichen.",
    "12 34 56 78 90 -- ## ** ::",
]


def _packaged():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_language_model_cache_gives_the_packaged_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = _packaged()
    first = score.load_identifier(tmp_path)
    [cached] = tmp_path.glob("model-*.npz")
    assert not list(tmp_path.glob(".model-*"))  # no temporary file left behind
    # A later process reads the cached arrays and never decompresses the package again.
    monkeypatch.setattr(score.lzma, "open", lambda *a, **k: pytest.fail("decompressed again"))
    second = score.load_identifier(tmp_path)
    for identifier in (first, second):
        for text in SAMPLES:
            assert identifier.rank(text) == packaged.rank(text)
    assert cached.stat().st_size > 10_000_000


def test_damaged_or_unwritable_cache_falls_back_to_the_package(tmp_path: Path) -> None:
    packaged = _packaged()
    score.load_identifier(tmp_path)
    [cached] = tmp_path.glob("model-*.npz")
    cached.write_bytes(cached.read_bytes()[:1000])
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    for cache_dir in (tmp_path, blocked, None):
        identifier = score.load_identifier(cache_dir)
        assert [identifier.rank(t) for t in SAMPLES] == [packaged.rank(t) for t in SAMPLES]


def test_spacy_loads_only_the_components_screening_uses() -> None:
    from assets.pii.screen import nlp_engine

    nlp = nlp_engine().nlp["en"]  # type: ignore[attr-defined]
    # Tagger, parser, lemmatizer and their tok2vec are never built (the NER has its own).
    assert nlp.component_names == ["sentencizer", "ner", "privatune_lowercase_lemma"]
    assert nlp.disabled == []
