"""Start a throwaway S3-compatible server (nanio) for tests."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from resources.clamd_local import stop_process

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class S3ServerInfo:
    """Where a running test S3 server listens and how to sign requests to it."""

    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path


def nanio_executable() -> Path:
    """The `nanio` script of this interpreter's environment (or on PATH)."""
    beside = Path(sys.executable).parent / "nanio"
    if beside.exists():
        return beside
    found = shutil.which("nanio")
    if found:
        return Path(found)
    raise FileNotFoundError(f"nanio is not installed next to {sys.executable} nor on PATH")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def start_nanio(
    tmp_dir: str | os.PathLike[str],
    access_key: str = "privatune-test",
    secret_key: str | None = None,
) -> Iterator[S3ServerInfo]:
    """Run `nanio serve` on a free 127.0.0.1 port with data under `tmp_dir`; stop it on exit."""
    tmp = Path(tmp_dir)
    data_dir = tmp / "nanio-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_key = secret_key or secrets.token_hex(20)
    # Drop inherited NANIO_* settings (an options file, another port) so only ours apply.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANIO_")}
    env["NANIO_ACCESS_KEY"] = access_key
    env["NANIO_SECRET_KEY"] = secret_key
    port = _free_port()
    command = [
        str(nanio_executable()),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # A file, not a pipe: nobody drains a pipe while tests run, and a full one blocks the server.
    log_path = tmp / "nanio.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts(port):
            if proc.poll() is not None:
                output = log_path.read_text(errors="replace")
                raise RuntimeError(f"nanio exited with code {proc.returncode}:\n{output}")
            if time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")
                raise RuntimeError(
                    f"nanio did not accept connections on port {port} within "
                    f"{STARTUP_TIMEOUT_S:.0f} s:\n{output}"
                )
            time.sleep(0.1)
        yield S3ServerInfo(
            endpoint=f"127.0.0.1:{port}",
            access_key=access_key,
            secret_key=secret_key,
            data_dir=data_dir,
        )
    finally:
        stop_process(proc, STOP_TIMEOUT_S)
