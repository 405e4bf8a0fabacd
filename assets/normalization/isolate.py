"""Run extract() in worker processes, so a hostile document costs one worker, not the run.

Parsers for PDF and Office formats are large C libraries fed by strangers'
files: a document can hang them, make them allocate without bound, or crash
them. Each extraction runs in a worker process with an address-space limit
(RLIMIT_AS) and a wall-clock deadline; the worker is killed and replaced when
it overruns, and its failure becomes an ExtractionError ("timeout",
"resource_limit" or "crashed").

Workers are fresh interpreters (`python -m assets.normalization.isolate`),
never forks of the caller, which may hold torch, CUDA or threads; nor
multiprocessing children, which re-import the caller's __main__. A worker
costs about 0.2 s of imports (pymupdf without its layout analyser), so it is kept for
many documents: replaced when it times out, runs out of memory or dies, and
after _MAX_TASKS_PER_WORKER documents.

Requests and replies travel over a socket pair in multiprocessing's framing;
replies are JSON, not pickle: a worker that parsed a hostile file is not
trusted to send the parent objects to construct.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from assets.normalization.extract import Extraction, ExtractionError, Page, load_pymupdf

_DEFAULT_TARGET = "assets.normalization.extract:extract"
# Recycling bounds what a worker can leak (MuPDF's caches, heap fragmentation).
_MAX_TASKS_PER_WORKER = 500
_START_TIMEOUT_S = 60.0
_STOP_GRACE_S = 2.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ExtractionPool:
    """Up to `max_workers` worker processes, started on demand and reused.

    Thread-safe: concurrent callers each get a worker, or wait for one.
    `target` ("module:function", called as target(data, doc_type, **kwargs)) is
    what a worker runs; it exists so tests can run a misbehaving parser.
    """

    def __init__(
        self,
        max_workers: int = 1,
        *,
        max_tasks_per_worker: int = _MAX_TASKS_PER_WORKER,
        target: str = _DEFAULT_TARGET,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._max_tasks = max_tasks_per_worker
        self._target = target
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._condition = threading.Condition()
        self.workers_started = 0

    def extract(
        self,
        data: bytes,
        doc_type: str,
        *,
        timeout_s: float = 120,
        memory_mb: int = 2048,
        **extract_kwargs: Any,
    ) -> Extraction:
        """extract(data, doc_type, **extract_kwargs) in a worker; see extract_isolated."""
        header = json.dumps(
            {"doc_type": doc_type, "kwargs": extract_kwargs, "memory_mb": int(memory_mb)}
        ).encode()
        worker = self._acquire()
        healthy = False
        try:
            reply, healthy = worker.run(header, data, timeout_s)
        finally:
            self._release(worker, healthy)
        return _extraction_from_reply(reply)

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when their document is done."""
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._condition.notify_all()
        for worker in idle:
            worker.stop()

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError("the extraction pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.stop()  # died while idle: killed from outside, or the OOM killer
                    self._count -= 1
                if self._count < self._max_workers:
                    self._count += 1
                    break
                self._condition.wait()
        try:
            worker = _Worker(self._target)
        except BaseException:
            with self._condition:
                self._count -= 1
                self._condition.notify()
            raise
        with self._condition:
            self.workers_started += 1
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._condition:
            keep = healthy and not self._closed and worker.tasks < self._max_tasks
            if keep:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._condition.notify()
        if not keep:
            worker.stop()


class _Worker:
    def __init__(self, target: str) -> None:
        parent_socket, child_socket = socket.socketpair()
        environment = dict(os.environ)
        # The project root, for a checkout that is not installed and for test targets.
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PROJECT_ROOT), environment.get("PYTHONPATH")])
        )
        fd = child_socket.fileno()
        command = [sys.executable, "-m", "assets.normalization.isolate", str(fd), target]
        try:
            self._process = subprocess.Popen(
                command,
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                env=environment,
                # Its own process group: a kill takes its tesseract children along,
                # and Ctrl-C in a terminal reaches only the parent, which stops it.
                start_new_session=True,
            )
        finally:
            child_socket.close()
        self._conn = Connection(parent_socket.detach())
        self.tasks = 0
        try:
            ready = self._conn.poll(_START_TIMEOUT_S) and self._conn.recv_bytes() == b"ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            self._conn.close()
            raise RuntimeError(f"the extraction worker did not start ({' '.join(command)})")

    def alive(self) -> bool:
        return self._process.poll() is None

    def run(self, header: bytes, data: bytes, timeout_s: float) -> tuple[dict[str, Any], bool]:
        """Send one document; return (reply, whether the worker can be reused)."""
        self.tasks += 1
        deadline = time.monotonic() + timeout_s
        try:
            self._conn.send_bytes(header)
            self._conn.send_bytes(data)
            if not self._conn.poll(max(deadline - time.monotonic(), 0)):
                self.kill()
                return _error("timeout", f"extraction took longer than {timeout_s:g} s"), False
            payload = self._conn.recv_bytes()
        except (EOFError, OSError):
            return self._death(), False
        try:
            reply = json.loads(payload)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.kill()
            return _error("crashed", "the extraction worker sent an unreadable reply"), False
        return reply, reply.get("recycle") is False

    def _death(self) -> dict[str, Any]:
        try:
            code = self._process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:  # the socket broke but the process lives on
            self.kill()
            return _error("crashed", "the extraction worker stopped answering")
        if code == -signal.SIGKILL:
            # Nobody here sent it: the kernel's OOM killer (or a cgroup limit) did.
            return _error(
                "resource_limit", "the extraction worker was killed, most likely for its memory use"
            )
        if code < 0:
            name = signal.Signals(-code).name
            return _error("crashed", f"the extraction worker died of {name}")
        return _error("crashed", f"the extraction worker exited with status {code}")

    def kill(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self._process.kill()
        self._process.wait()

    def stop(self) -> None:
        self._conn.close()  # the worker sees EOF and exits
        try:
            self._process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()


def _error(reason: str, message: str) -> dict[str, Any]:
    return {"error": {"reason": reason, "message": message}}


def _extraction_from_reply(reply: dict[str, Any]) -> Extraction:
    try:
        if "error" in reply:
            reason, message = reply["error"]["reason"], reply["error"]["message"]
            if reason in ExtractionError.REASONS and isinstance(message, str):
                raise ExtractionError(reason, message)
            raise ValueError(reason)
        pages = [
            Page(
                number=int(page["number"]),
                text=str(page["text"]),
                method=str(page["method"]),
                ocr_confidence=None
                if page["ocr_confidence"] is None
                else float(page["ocr_confidence"]),
            )
            for page in reply["pages"]
        ]
        metadata = {str(key): str(value) for key, value in reply["metadata"].items()}
        return Extraction(pages=pages, method=str(reply["method"]), metadata=metadata)
    except ExtractionError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ExtractionError("crashed", "the extraction worker sent a malformed reply") from exc


# --- the worker side -------------------------------------------------------------


def _serve(conn: Connection, target: str) -> None:
    """Worker main loop: one document in, one JSON reply out, until EOF."""
    _quiet_mupdf()
    function = _resolve(target)
    conn.send_bytes(b"ready")
    while True:
        try:
            header = json.loads(conn.recv_bytes())
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        reply = _handle(function, data, header)
        del data
        try:
            payload = json.dumps(reply).encode()
        except (ValueError, TypeError) as exc:  # a metadata value that is not a string
            reply = {
                **_error("crashed", f"the extraction is not serialisable: {exc}"),
                "recycle": False,
            }
            payload = json.dumps(reply).encode()
        conn.send_bytes(payload)
        if reply["recycle"]:
            return


def _handle(function: Callable[..., Extraction], data: bytes, header: dict[str, Any]) -> dict:
    memory_mb = int(header["memory_mb"])
    _limit_address_space(memory_mb)
    try:
        extraction = function(data, header["doc_type"], **header["kwargs"])
    except ExtractionError as exc:
        return {**_error(exc.reason, exc.message), "recycle": False}
    except MemoryError:
        return {
            **_error(
                "resource_limit",
                f"the document needs more than the {memory_mb} MB an extraction may use",
            ),
            "recycle": True,  # after an allocation failure, trust nothing in this heap
        }
    except Exception as exc:
        return {
            **_error("crashed", f"the extractor raised {type(exc).__name__}: {exc}"),
            "recycle": False,
        }
    finally:
        # The limit is for the parser; the reply must get out even when the
        # parser used up the budget.
        _limit_address_space(None)
    return {
        "pages": [
            {
                "number": page.number,
                "text": page.text,
                "method": page.method,
                "ocr_confidence": page.ocr_confidence,
            }
            for page in extraction.pages
        ],
        "method": extraction.method,
        "metadata": extraction.metadata,
        "recycle": False,
    }


def _main() -> None:
    parser = argparse.ArgumentParser(description="Extraction worker; started by ExtractionPool.")
    parser.add_argument("fd", type=int, help="the socket to the parent")
    parser.add_argument("target", help='what to run, "module:function"')
    arguments = parser.parse_args()
    # Anything a library prints must not reach the parent's stdout (the bench
    # prints JSON there); the socket is the only channel back.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(Connection(arguments.fd), arguments.target)
    # Nothing left to clean up, and the parent waits for this exit: skip the interpreter's
    # teardown (its garbage collections over everything the parsers loaded).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _limit_address_space(memory_mb: int | None) -> None:
    """Cap the worker's address space (soft limit only, so it can be lifted again)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = hard if memory_mb is None else memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _quiet_mupdf() -> None:
    # MuPDF's complaints about broken files reach the caller as ExtractionError;
    # on the worker's stderr they would only be noise in the run logs.
    pymupdf = load_pymupdf()
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)


def _resolve(target: str) -> Callable[..., Extraction]:
    module_name, _, name = target.partition(":")
    function: Callable[..., Extraction] = getattr(importlib.import_module(module_name), name)
    return function


# --- the process-wide pool ---------------------------------------------------------

_POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
_pool: ExtractionPool | None = None
_pool_lock = threading.Lock()


def _default_pool() -> ExtractionPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ExtractionPool(_POOL_SIZE)
            atexit.register(_pool.close)
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child shares the parent's worker sockets; talking on them would
    # interleave with the parent. It starts workers of its own instead.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def extract_isolated(
    data: bytes,
    doc_type: str,
    *,
    timeout_s: float = 120,
    memory_mb: int = 2048,
    **extract_kwargs: Any,
) -> Extraction:
    """extract(data, doc_type, **extract_kwargs) in a worker process.

    `memory_mb` caps the worker's whole address space, interpreter and parsers
    included (about 600 MB of it before any document). Raises ExtractionError
    with reason "timeout" past `timeout_s` seconds, "resource_limit" when the
    document needs more memory, "crashed" when the worker dies (or the
    extractor raises anything but ExtractionError), and extract's own reasons
    otherwise. Workers are shared by the whole process (up to min(4, CPU
    count) at once); one that timed out, ran out of memory or died is replaced.
    RuntimeError means no worker could be started: the environment's fault,
    not the document's.

    OCR takes 0.3-1.5 s a page, so a long scan needs a `timeout_s` to match.
    """
    return _default_pool().extract(
        data, doc_type, timeout_s=timeout_s, memory_mb=memory_mb, **extract_kwargs
    )


if __name__ == "__main__":
    _main()
