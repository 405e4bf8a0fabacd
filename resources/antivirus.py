"""Malware scanning through a clamd daemon, spoken to directly over its socket (zINSTREAM).

No third-party client: the protocol is a few lines, and owning it lets every failure
(unreachable daemon, size limit, timeout) surface as one `ScannerUnavailable`.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.settings import Settings, get_settings

__all__ = [
    "CLEAN",
    "INFECTED",
    "Antivirus",
    "ClamdScanner",
    "ScanResult",
    "ScannerUnavailable",
    "build_scanner",
]

CLEAN = "clean"
INFECTED = "infected"

DEFAULT_CHUNK_SIZE = 1 << 16

# clamd answers one short line; anything longer is not clamd.
MAX_REPLY_BYTES = 64 * 1024

_FIX_HINT = "start clamd or set PRIVATUNE_CLAMD to its socket (unix:///path or tcp://host:port)"


@dataclass(frozen=True)
class ScanResult:
    """The verdict on one stream: `clean` or `infected` (with the signature that matched)."""

    status: str
    signature: str | None
    scanner: str
    seconds: float

    @property
    def infected(self) -> bool:
        return self.status == INFECTED


class ScannerUnavailable(RuntimeError):
    """clamd could not be reached, timed out or answered with an error: no verdict."""


class ClamdScanner:
    """A clamd client for one address: `unix:///path`, `tcp://host:port` or `host:port`."""

    def __init__(
        self, address: str, timeout: float = 60, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.address = address
        self.timeout = float(timeout)
        self.chunk_size = chunk_size
        self._unix_path, self._host_port = _parse_address(address)

    def __repr__(self) -> str:
        return f"ClamdScanner({self.address!r}, timeout={self.timeout:g})"

    def ping(self) -> bool:
        """True when clamd answers PONG; False when it cannot be reached."""
        try:
            return self._command(b"zPING\0") == "PONG"
        except ScannerUnavailable:
            return False

    def version(self) -> str:
        """clamd's VERSION line, e.g. `ClamAV 1.4.6/27000/Thu Nov 26 2026` (engine/db/date)."""
        return self._command(b"zVERSION\0")

    def scan_bytes(self, data: bytes) -> ScanResult:
        """Scan an in-memory buffer."""
        view = memoryview(data)
        return self._scan(
            view[i : i + self.chunk_size] for i in range(0, len(view), self.chunk_size)
        )

    def scan_stream(self, stream: BinaryIO) -> ScanResult:
        """Scan a file object from its current position, one chunk in memory at a time."""

        def chunks() -> Iterator[bytes]:
            while True:
                chunk = stream.read(self.chunk_size)
                if not chunk:
                    return
                yield chunk

        return self._scan(chunks())

    def _scan(self, chunks: Iterable[bytes | memoryview]) -> ScanResult:
        # Asked per scan, not cached: the reply carries the signature-database version, which
        # freshclam moves under a running daemon, and the verdict should record the one used.
        scanner = _scanner_name(self.version())
        started = time.monotonic()
        with self._connect() as sock:
            self._send(sock, b"zINSTREAM\0")
            # Reading stays outside the send guard: a failing source file is not clamd's fault.
            for chunk in chunks:
                self._send(sock, struct.pack(">I", len(chunk)))
                self._send(sock, chunk)
            self._send(sock, struct.pack(">I", 0))
            reply = self._read_reply(sock)
        seconds = time.monotonic() - started
        return _verdict(reply, scanner, seconds, self.address)

    def _send(self, sock: socket.socket, data: bytes | memoryview) -> None:
        try:
            sock.sendall(data)
        except OSError as exc:
            # clamd hangs up mid-stream when a limit is hit, after saying why; show that.
            early = self._read_reply_quietly(sock)
            raise ScannerUnavailable(
                f"clamd at {self.address} stopped reading: {early or _describe(exc)}{_hint(early)}"
            ) from exc

    def _command(self, command: bytes) -> str:
        with self._connect() as sock:
            self._send(sock, command)
            return self._read_reply(sock)

    def _connect(self) -> socket.socket:
        sock: socket.socket | None = None
        try:
            if self._unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self._unix_path)
                return sock
            assert self._host_port is not None
            return socket.create_connection(self._host_port, timeout=self.timeout)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise self._unavailable(exc) from exc

    def _read_reply(self, sock: socket.socket) -> str:
        buffer = bytearray()
        try:
            while b"\0" not in buffer and len(buffer) < MAX_REPLY_BYTES:
                data = sock.recv(4096)
                if not data:
                    break
                buffer += data
        except OSError as exc:
            raise self._unavailable(exc) from exc
        reply = bytes(buffer).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        if not reply:
            raise ScannerUnavailable(
                f"clamd at {self.address} closed the connection without an answer; {_FIX_HINT}"
            )
        return reply

    def _read_reply_quietly(self, sock: socket.socket) -> str:
        try:
            sock.settimeout(min(self.timeout, 2.0))
            return self._read_reply(sock)
        except (ScannerUnavailable, OSError):
            return ""

    def _unavailable(self, exc: OSError) -> ScannerUnavailable:
        return ScannerUnavailable(
            f"clamd at {self.address} is unavailable ({_describe(exc)}); {_FIX_HINT}"
        )


def _parse_address(address: str) -> tuple[str | None, tuple[str, int] | None]:
    """(unix socket path, None) or (None, (host, port)); ValueError for anything else."""
    text = address.strip()
    if text.startswith("unix://"):
        path = text[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError(
                f"clamd address {address!r}: unix sockets need an absolute path, unix:///path"
            )
        return path, None
    if "://" in text and not text.startswith("tcp://"):
        raise ValueError(
            f"clamd address {address!r}: use unix:///path, tcp://host:port or host:port"
        )
    parts = urlsplit(text if text.startswith("tcp://") else f"tcp://{text}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"clamd address {address!r}: bad port ({exc})") from None
    if not parts.hostname or port is None or parts.path or parts.query or parts.fragment:
        raise ValueError(
            f"clamd address {address!r}: use unix:///path, tcp://host:port or host:port"
        )
    if port == 0:
        raise ValueError(f"clamd address {address!r}: port 0 is not a port clamd listens on")
    return None, (parts.hostname, port)


def _scanner_name(version: str) -> str:
    # "ClamAV 1.4.6/27000/..." names the engine; the daemon is what we talked to.
    return "clamd " + version.removeprefix("ClamAV ").strip()


def _verdict(reply: str, scanner: str, seconds: float, address: str) -> ScanResult:
    if reply.endswith("ERROR") or not reply.startswith("stream:"):
        raise ScannerUnavailable(
            f"clamd at {address} could not scan the stream: {reply}{_hint(reply)}"
        )
    body = reply.removeprefix("stream:").strip()
    if body == "OK":
        return ScanResult(status=CLEAN, signature=None, scanner=scanner, seconds=seconds)
    if body.endswith(" FOUND"):
        signature = body.removesuffix(" FOUND").strip()
        return ScanResult(status=INFECTED, signature=signature, scanner=scanner, seconds=seconds)
    raise ScannerUnavailable(
        f"clamd at {address} gave an answer this client does not know: {reply}"
    )


def _hint(reply: str) -> str:
    if "size limit" in reply:
        return " (raise StreamMaxLength in clamd.conf, or keep uploads below it)"
    return ""


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out; raise PRIVATUNE_SCAN_TIMEOUT_S if large files are expected"
    return f"{type(exc).__name__}: {exc}"


def build_scanner(settings: Settings | None = None) -> ClamdScanner | None:
    """The scanner named by PRIVATUNE_CLAMD, or None when none is configured."""
    settings = settings or get_settings()
    if not settings.clamd:
        return None
    return ClamdScanner(settings.clamd, timeout=settings.scan_timeout_s)


class Antivirus(dg.ConfigurableResource):
    """Malware scanning for Dagster assets; unset fields come from the privatune settings."""

    address: str | None = Field(
        default=None,
        description="clamd socket, unix:///path or tcp://host:port; empty string: no scanner. "
        "Default: PRIVATUNE_CLAMD.",
    )
    required: bool | None = Field(
        default=None,
        description="Fail closed: hold documents back while no scanner answers. "
        "Default: PRIVATUNE_SCAN_REQUIRED.",
    )
    timeout_s: int | None = Field(
        default=None,
        description="Socket timeout for one clamd call, in seconds. Default: PRIVATUNE_SCAN_TIMEOUT_S.",
    )

    _scanner: ClamdScanner | None = PrivateAttr(default=None)

    def scanner(self) -> ClamdScanner | None:
        """The configured scanner (built on first use), or None when none is configured."""
        if self._scanner is None:
            # Read at run time, never at import, so env changes and EnvVar fields take effect.
            settings = get_settings()
            address = settings.clamd if self.address is None else self.address.strip()
            if not address:
                return None
            timeout = settings.scan_timeout_s if self.timeout_s is None else self.timeout_s
            self._scanner = ClamdScanner(address, timeout=timeout)
        return self._scanner

    def is_required(self) -> bool:
        """Whether documents must wait for a verdict rather than pass unscanned."""
        return get_settings().scan_required if self.required is None else self.required
