"""Loading, in the background, the models a run will need for new documents.

A run that onboards a few new documents spends more time loading the language model, spaCy
and Presidio than processing the documents; loading them while the scanner and the
extraction worker are busy takes most of that off the run's critical path. Two threads: the
language model is needed first (by normalized_documents), and its load (file reads, and LZMA
decompression the first time) runs mostly outside the GIL, beside the Presidio and spaCy
imports, which hold it."""

from __future__ import annotations

import gc
import threading

_started = False
_lock = threading.Lock()


def _load_language_model() -> None:
    from assets.quality.score import detect_language

    detect_language("A short English sentence to load the language model.")


def _load_pii_screener() -> None:
    from assets.pii.screen import PiiScreener

    # The spaCy engine and the analyzer for projects without recognizers of their own.
    PiiScreener()
    # What was just loaded (~200K objects) stays for the process's life: out of the cyclic
    # collector's way, as pipelines/definitions.py does for the libraries it imports.
    gc.freeze()


def prewarm() -> None:
    """Start loading once per process; returns at once."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    for name, target in (
        ("prewarm-language-model", _load_language_model),
        ("prewarm-pii-screener", _load_pii_screener),
    ):
        threading.Thread(target=target, name=name, daemon=True).start()
