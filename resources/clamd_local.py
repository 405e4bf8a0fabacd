"""A throwaway clamd with a local signature database (the EICAR test signatures), for tests
and the embedded demo. Production points PRIVATUNE_CLAMD at a clamd kept current by freshclam."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLAMD = Path("/usr/sbin/clamd")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
HDB_SIGNATURE = "Local.EICAR.Test.HDB"
NDB_SIGNATURE = "Local.EICAR.Test.NDB"


def eicar_bytes() -> bytes:
    """The 68-byte EICAR test file, assembled here so this source is not itself flagged."""
    head = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
    tail = "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    return (head + "EICAR" + tail).encode("ascii")


@dataclass(frozen=True)
class ClamdInfo:
    """Where a running test clamd listens and where its files are."""

    address: str
    socket_path: Path
    db_dir: Path
    log_path: Path


def write_signatures(db_dir: Path) -> None:
    """A hash signature for the exact EICAR file and a body signature for EICAR anywhere."""
    db_dir.mkdir(parents=True, exist_ok=True)
    eicar = eicar_bytes()
    (db_dir / "local.hdb").write_text(f"{EICAR_MD5}:{len(eicar)}:{HDB_SIGNATURE}\n")
    # Name:TargetType:Offset:HexSignature; target 0 = any file type, offset * = anywhere.
    (db_dir / "local.ndb").write_text(f"{NDB_SIGNATURE}:0:*:{eicar.hex()}\n")


def _answers_ping(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(socket_path))
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """Terminate a child, then kill it if it has not gone after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def start_clamd(
    tmp_dir: str | os.PathLike[str], stream_max_length: str = "100M"
) -> Iterator[ClamdInfo]:
    """Run clamd in the foreground on a unix socket under `tmp_dir`; stop it on exit."""
    if not os.access(CLAMD, os.X_OK):
        raise RuntimeError(
            f"{CLAMD} is missing: run `make system-deps` (installs Debian's clamav-daemon)"
        )
    tmp = Path(tmp_dir).resolve()
    tmp.mkdir(parents=True, exist_ok=True)
    db_dir = tmp / "db"
    write_signatures(db_dir)
    socket_path = tmp / "clamd.sock"
    log_path = tmp / "clamd.log"
    # sun_path holds 107 bytes; a deep pytest tmp dir can exceed it and clamd then fails to bind.
    if len(os.fsencode(socket_path)) > 100:
        raise RuntimeError(f"socket path too long for a unix socket: {socket_path}")
    conf = tmp / "clamd.conf"
    # No `User` line: clamd then keeps the invoking user (root or not) and can read the tmp
    # dirs, which pytest makes 0700. Debian's own clamd.conf switches to `clamav`, which can't.
    conf.write_text(
        "\n".join(
            [
                f"LocalSocket {socket_path}",
                "LocalSocketMode 600",
                f"DatabaseDirectory {db_dir}",
                "Foreground yes",
                f"LogFile {log_path}",
                "LogTime yes",
                f"PidFile {tmp / 'clamd.pid'}",
                f"TemporaryDirectory {tmp}",
                f"StreamMaxLength {stream_max_length}",
                "MaxFileSize 100M",
                "MaxScanSize 400M",
                # Tests load one tiny DB; the 600 s self-check and bytecode would only add noise.
                "SelfCheck 0",
                "Bytecode no",
                "",
            ]
        )
    )
    # A file, not a pipe: nobody drains a pipe while tests run, and a full one blocks clamd.
    with open(tmp / "clamd.out", "wb") as out:
        proc = subprocess.Popen([str(CLAMD), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers_ping(socket_path):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"clamd exited with code {proc.returncode}:\n{_logs(tmp, log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"clamd did not answer PING on {socket_path} within "
                    f"{STARTUP_TIMEOUT_S:.0f} s:\n{_logs(tmp, log_path)}"
                )
            time.sleep(0.05)
        yield ClamdInfo(
            address=f"unix://{socket_path}",
            socket_path=socket_path,
            db_dir=db_dir,
            log_path=log_path,
        )
    finally:
        stop_process(proc)


def _logs(tmp: Path, log_path: Path) -> str:
    parts = []
    for path in (log_path, tmp / "clamd.out"):
        if path.exists():
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
    return "\n".join(parts) or "(no log written)"
