"""Loading, in the background, the models a run will need for new documents.

A run that onboards a few new documents spends more time loading the language model, spaCy
and Presidio than processing the documents; loading them while the scanner and the
extraction worker are busy takes most of that off the run's critical path. The language model
loads in a thread; Presidio and spaCy, whose imports hold the interpreter lock for about a
second, load in the PII worker process, which then screens the run's new texts."""

from __future__ import annotations

import gc
import threading

_started = False
_lock = threading.Lock()


def _load_language_model() -> None:
    from assets.quality.score import detect_language

    detect_language("A short English sentence to load the language model.")


def _load_language_model_and_freeze() -> None:
    _load_language_model()
    # What was just loaded stays for the process's life: out of the cyclic collector's way,
    # as pipelines/definitions.py does for the libraries it imports.
    gc.freeze()


def prewarm() -> None:
    """Start loading once per process; returns at once. The language model loads in a thread
    (needed first, mostly outside the interpreter lock); Presidio and spaCy load in the PII
    worker process (`assets/pii/worker.py`), on the other core."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    from assets.pii.worker import worker

    worker().start()
    threading.Thread(
        target=_load_language_model_and_freeze, name="prewarm-language-model", daemon=True
    ).start()
