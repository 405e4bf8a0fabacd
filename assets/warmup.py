"""Loading, in the background, the models a run will need for new documents.

A run that onboards a few new documents spends more time loading the language model, spaCy
and Presidio than processing the documents; loading them while the scanner and the
extraction worker are busy takes most of that off the run's critical path."""

from __future__ import annotations

import threading

_started = False
_lock = threading.Lock()


def _load() -> None:
    from assets.pii.screen import nlp_engine
    from assets.quality.score import detect_language

    detect_language("A short English sentence to load the language model.")
    nlp_engine()


def prewarm() -> None:
    """Start loading once per process; returns at once."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_load, name="prewarm-models", daemon=True).start()
