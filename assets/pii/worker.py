"""PII screening in a process of its own, started as soon as a run meets a new document.

Loading Presidio and spaCy costs about a second of CPU while holding the interpreter lock: in
the run's own process that time adds straight to a run that onboards one document. A worker
process loads them on the machine's other core while the run scans, extracts and dedupes, then
screens the new texts when they arrive. One worker per run process, started once; it exits when
its pipe closes (the run process ended) or on `stop()`.

Protocol: one JSON object per line each way. Request `{"texts", "policy", "custom",
"allow_terms", "entities"}` (`custom`: recognisers as `CustomRecognizer.to_dict`; `allow_terms`: a
list of terms, `entities`: a list of entity types or null for the defaults; a request without the
last two, as older callers send, gets `[]` and `null`); answer
`{"results": [[text, status, summary], ...]}` or `{"error": "..."}`."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from assets.pii.recognizers import CustomRecognizer
from assets.privacy.screening import Screened

ROOT = Path(__file__).resolve().parents[2]


class PiiWorkerError(RuntimeError):
    """The worker process failed or died; the caller screens in-process instead."""


class PiiWorker:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker (once); returns at once, the worker loads in the background."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "assets.pii.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
                env=env,
            )

    @property
    def started(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def screen(
        self,
        texts: Sequence[str],
        policy: str,
        custom: Sequence[CustomRecognizer],
        allow_terms: Sequence[str] = (),
        entities: Sequence[str] | None = None,
    ) -> list[Screened]:
        """screen_texts(texts, policy, ...) with the screener of `custom`, `allow_terms` and
        `entities`, done in the worker process."""
        if not texts:
            return []
        self.start()
        with self._lock:
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            request = {
                "texts": list(texts),
                "policy": policy,
                "custom": [c.to_dict() for c in custom],
                "allow_terms": list(allow_terms),
                "entities": None if entities is None else list(entities),
            }
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            except OSError as exc:
                self._proc = None
                raise PiiWorkerError(f"PII worker pipe broke: {exc}") from exc
            if not line:
                self._proc = None
                raise PiiWorkerError(f"PII worker exited (code {proc.poll()})")
            answer = json.loads(line)
        if "error" in answer:
            raise PiiWorkerError(answer["error"])
        return [Screened(text, status, summary) for text, status, summary in answer["results"]]

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # The worker holds no state worth a clean shutdown (which, with spaCy loaded, costs
            # a run process's exit about half a second): end it at once.
            proc.kill()
            proc.wait()


_worker = PiiWorker()
atexit.register(_worker.stop)


def worker() -> PiiWorker:
    """This process's PII worker."""
    return _worker


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    from assets.pii.screen import PiiScreener
    from assets.privacy.screening import screen_texts

    def key_of(request: dict[str, Any]) -> str:
        config = [request.get("custom") or [], request.get("allow_terms") or []]
        return json.dumps([*config, request.get("entities")], sort_keys=True)

    # Load while the run works.
    screeners: dict[str, PiiScreener] = {key_of({}): PiiScreener()}
    for line in stdin:
        try:
            request = json.loads(line)
            key = key_of(request)
            if key not in screeners:
                screeners[key] = PiiScreener(
                    custom=[CustomRecognizer.from_dict(c) for c in request.get("custom") or []],
                    allow_terms=request.get("allow_terms") or (),
                    entities=request.get("entities"),
                )
            results = screen_texts(request["texts"], request["policy"], screeners[key])
            answer: dict[str, Any] = {"results": [[r.text, r.status, r.summary] for r in results]}
        except Exception as exc:  # reported to the caller, which screens in-process
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
    sys.stdout.flush()
    os._exit(0)  # the pipe closed: skip the interpreter's shutdown
