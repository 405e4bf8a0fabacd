"""The clamd client against a real clamd loaded with a local EICAR-only signature database."""

from __future__ import annotations

import io
import socket
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from resources.antivirus import (
    Antivirus,
    ClamdScanner,
    ScannerUnavailable,
    build_scanner,
)
from resources.clamd_local import (
    HDB_SIGNATURE,
    NDB_SIGNATURE,
    ClamdInfo,
    eicar_bytes,
    start_clamd,
)
from resources.settings import get_settings


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInfo]:
    with start_clamd(tmp_path_factory.mktemp("clamd")) as info:
        yield info


@pytest.fixture
def scanner(clamd: ClamdInfo) -> ClamdScanner:
    return ClamdScanner(clamd.address, timeout=30)


class _GeneratedFile(io.RawIOBase):
    """A read-only file of `size` bytes of prose, produced on demand and never held whole."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._line = b"Quarterly handbook revision: nothing to see here, just plain text.\n"
        self._offset = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        line, written = self._line, 0
        while written < n:
            piece = line[self._offset : self._offset + n - written]
            buffer[written : written + len(piece)] = piece
            written += len(piece)
            self._offset = (self._offset + len(piece)) % len(line)
        self._left -= n
        self.bytes_read += n
        return n


def test_clean_bytes_are_clean(scanner: ClamdScanner) -> None:
    result = scanner.scan_bytes(b"Employees get 25 days of paid leave per year.\n")
    assert result.status == "clean"
    assert result.signature is None
    assert not result.infected
    assert result.scanner.startswith("clamd 1.")
    assert result.seconds >= 0


def test_empty_input_is_clean(scanner: ClamdScanner) -> None:
    assert scanner.scan_bytes(b"").status == "clean"


def test_exact_eicar_is_infected(scanner: ClamdScanner) -> None:
    result = scanner.scan_bytes(eicar_bytes())
    assert result.status == "infected"
    assert result.infected
    assert result.signature is not None and "EICAR" in result.signature
    # Both local signatures match the exact file; clamd reports one of them.
    assert result.signature.removesuffix(".UNOFFICIAL") in {HDB_SIGNATURE, NDB_SIGNATURE}


def test_eicar_inside_a_larger_text_is_infected(scanner: ClamdScanner) -> None:
    text = eicar_bytes() + b"\n" + b"Meeting notes, nothing else of interest.\n" * 2000
    result = scanner.scan_stream(io.BytesIO(text))
    assert result.status == "infected"
    # Only the body signature can see it: the file's MD5 is no longer EICAR's.
    assert result.signature is not None
    assert result.signature.removesuffix(".UNOFFICIAL") == NDB_SIGNATURE


def test_eicar_split_across_chunks_is_found(clamd: ClamdInfo) -> None:
    small_chunks = ClamdScanner(clamd.address, chunk_size=7)
    result = small_chunks.scan_bytes(b"header " * 3 + eicar_bytes() + b" trailer")
    assert result.status == "infected"


def test_large_stream_is_scanned_chunk_by_chunk(scanner: ClamdScanner) -> None:
    size = 20 * 1024 * 1024
    stream = _GeneratedFile(size)
    tracemalloc.start()
    try:
        result = scanner.scan_stream(cast(BinaryIO, stream))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "clean"
    assert stream.bytes_read == size
    # A client that read the whole stream first would peak at 20 MB or more.
    assert peak < 2 * 1024 * 1024, f"peak Python allocation {peak} bytes"


def test_a_failing_source_is_not_blamed_on_clamd(scanner: ClamdScanner) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone") as info:
        scanner.scan_stream(cast(BinaryIO, Broken()))
    assert not isinstance(info.value, ScannerUnavailable)
    assert scanner.ping()


def test_stream_over_clamd_limit_raises(tmp_path: Path) -> None:
    with start_clamd(tmp_path, stream_max_length="1M") as small:
        scanner = ClamdScanner(small.address, timeout=10)
        with pytest.raises(ScannerUnavailable, match="size limit exceeded.*StreamMaxLength"):
            scanner.scan_stream(cast(BinaryIO, _GeneratedFile(4 * 1024 * 1024)))
        # The daemon survives the refusal and keeps serving.
        assert scanner.ping()


def test_unreachable_socket_raises_with_a_fix(tmp_path: Path) -> None:
    scanner = ClamdScanner(f"unix://{tmp_path / 'nobody-listens.sock'}", timeout=2)
    assert scanner.ping() is False
    with pytest.raises(ScannerUnavailable) as info:
        scanner.scan_bytes(b"hello")
    message = str(info.value)
    assert "nobody-listens.sock" in message
    assert "start clamd" in message and "PRIVATUNE_CLAMD" in message


def test_unreachable_tcp_port_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Bound then closed: nothing listens there now.
    scanner = ClamdScanner(f"tcp://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ScannerUnavailable, match="ConnectionRefused"):
        scanner.version()


def test_silent_scanner_times_out(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    accepted: list[socket.socket] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        # Accepts and never answers, like a wedged daemon.
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        scanner = ClamdScanner(f"unix://{path}", timeout=0.5)
        with pytest.raises(ScannerUnavailable, match="timed out"):
            scanner.version()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("unix:///run/clamav/clamd.ctl", ("/run/clamav/clamd.ctl", None)),
        ("tcp://127.0.0.1:3310", (None, ("127.0.0.1", 3310))),
        ("clamav.internal:3310", (None, ("clamav.internal", 3310))),
        ("tcp://[::1]:3310", (None, ("::1", 3310))),
    ],
)
def test_addresses_are_parsed(address: str, expected: tuple) -> None:
    scanner = ClamdScanner(address)
    assert (scanner._unix_path, scanner._host_port) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "clamd",
        "/run/clamav/clamd.ctl",
        "unix://relative.sock",
        "unix://",
        "http://127.0.0.1:3310",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:notaport",
        "tcp://127.0.0.1:70000",
        "tcp://127.0.0.1:0",
        "tcp://:3310",
        "tcp://127.0.0.1:3310/path",
    ],
)
def test_bad_addresses_raise_value_error(address: str) -> None:
    with pytest.raises(ValueError, match="clamd address"):
        ClamdScanner(address)


def test_ping_and_version(scanner: ClamdScanner) -> None:
    assert scanner.ping() is True
    assert scanner.version().startswith("ClamAV 1.")


def test_build_scanner_follows_settings(clamd: ClamdInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVATUNE_CLAMD", raising=False)
    get_settings.cache_clear()
    assert build_scanner() is None

    monkeypatch.setenv("PRIVATUNE_CLAMD", clamd.address)
    monkeypatch.setenv("PRIVATUNE_SCAN_TIMEOUT_S", "7")
    get_settings.cache_clear()
    scanner = build_scanner()
    assert scanner is not None
    assert scanner.address == clamd.address
    assert scanner.timeout == 7
    assert scanner.scan_bytes(eicar_bytes()).status == "infected"


def test_antivirus_resource_falls_back_to_settings(
    clamd: ClamdInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRIVATUNE_CLAMD", raising=False)
    monkeypatch.setenv("PRIVATUNE_SCAN_REQUIRED", "0")
    get_settings.cache_clear()
    # Built before the env names a scanner: settings are read at use, not at construction.
    resource = Antivirus()
    assert resource.scanner() is None
    assert resource.is_required() is False

    monkeypatch.setenv("PRIVATUNE_CLAMD", clamd.address)
    monkeypatch.setenv("PRIVATUNE_SCAN_REQUIRED", "1")
    get_settings.cache_clear()
    scanner = resource.scanner()
    assert scanner is not None and scanner.address == clamd.address
    assert resource.is_required() is True
    assert scanner.scan_bytes(b"plain text").status == "clean"


def test_antivirus_resource_fields_override_settings(
    clamd: ClamdInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVATUNE_CLAMD", "tcp://127.0.0.1:9")
    monkeypatch.setenv("PRIVATUNE_SCAN_REQUIRED", "1")
    get_settings.cache_clear()
    resource = Antivirus(address=clamd.address, required=False, timeout_s=5)
    scanner = resource.scanner()
    assert scanner is not None
    assert (scanner.address, scanner.timeout) == (clamd.address, 5)
    assert resource.is_required() is False
    assert Antivirus(address="").scanner() is None


def test_antivirus_resource_in_a_dagster_asset(clamd: ClamdInfo) -> None:
    import dagster as dg

    @dg.asset
    def verdict(antivirus: Antivirus) -> str:
        """The scan status of the EICAR file."""
        scanner = antivirus.scanner()
        assert scanner is not None
        return scanner.scan_bytes(eicar_bytes()).status

    result = dg.materialize([verdict], resources={"antivirus": Antivirus(address=clamd.address)})
    assert result.success
    assert result.output_for_node("verdict") == "infected"
