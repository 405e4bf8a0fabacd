"""ZIP archives unpacked with limits, so a zip bomb costs one rejected upload, never the disk
or the memory of the server."""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO, BinaryIO

_CHUNK = 1 << 16
# ZIP-based formats that are documents, not archives of documents.
_OFFICE_MARKERS = ("word/document.xml", "[Content_Types].xml", "mimetype", "META-INF/manifest.xml")
_SKIP_PREFIXES = ("__MACOSX/",)


class ArchiveRejected(Exception):
    """The archive breaks a limit or cannot be read; `reason` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 1000
    max_total_bytes: int = 512 * 1024 * 1024
    max_ratio: int = 100
    max_entry_bytes: int = 100 * 1024 * 1024


@dataclass
class ArchiveEntry:
    name: str
    size: int
    sha256: str
    file: IO[bytes]


def is_archive(stream: BinaryIO) -> bool:
    """A plain ZIP archive (DOCX, XLSX, ODT and friends are ZIPs too, but are documents)."""
    position = stream.tell()
    try:
        head = stream.read(4)
        if head != b"PK\x03\x04":
            return False
        stream.seek(position)
        try:
            with zipfile.ZipFile(stream) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return True  # looks like a ZIP but is broken: handled (rejected) as an archive
        return not any(marker in names for marker in _OFFICE_MARKERS)
    finally:
        stream.seek(position)


def _safe_name(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:300]


def unpack(stream: BinaryIO, limits: ArchiveLimits) -> list[ArchiveEntry]:
    """Every file of the archive, spooled to disk beyond 1 MiB and hashed while read; all or
    nothing, so a rejected archive stores none of its files. Sizes declared in the archive are
    checked first and then enforced on the bytes actually inflated, since a hostile archive
    can lie about them. The caller closes each entry's file."""
    entries: list[ArchiveEntry] = []
    try:
        _unpack_into(stream, limits, entries)
    except BaseException:
        for entry in entries:
            entry.file.close()
        raise
    return entries


def _unpack_into(stream: BinaryIO, limits: ArchiveLimits, entries: list[ArchiveEntry]) -> None:
    try:
        zf = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveRejected("archive_corrupt", f"the ZIP archive cannot be read: {exc}") from exc
    with zf:
        infos = [
            i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith(_SKIP_PREFIXES)
        ]
        if len(infos) > limits.max_entries:
            raise ArchiveRejected(
                "archive_too_many_entries",
                f"the archive has {len(infos)} files; at most {limits.max_entries} are unpacked",
            )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_total_bytes:
            raise ArchiveRejected(
                "archive_too_large",
                f"the archive unpacks to {declared} bytes; the limit is {limits.max_total_bytes}",
            )
        for info in infos:
            if info.flag_bits & 0x1:
                raise ArchiveRejected(
                    "archive_encrypted", f"{info.filename} is encrypted; upload it unencrypted"
                )
            ratio = info.file_size / max(1, info.compress_size)
            if ratio > limits.max_ratio:
                raise ArchiveRejected(
                    "archive_ratio",
                    f"{info.filename} is compressed {ratio:.0f}:1; more than {limits.max_ratio}:1 looks like a zip bomb",
                )
        total = 0
        for info in infos:
            allowed = min(info.file_size, limits.max_entry_bytes, limits.max_total_bytes - total)
            spooled = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - closed by the caller
            entries.append(
                ArchiveEntry(name=_safe_name(info.filename), size=0, sha256="", file=spooled)
            )
            digest = hashlib.sha256()
            size = 0
            try:
                with zf.open(info) as member:
                    while block := member.read(_CHUNK):
                        size += len(block)
                        if size > allowed or size > max(1, info.compress_size) * limits.max_ratio:
                            raise ArchiveRejected(
                                "archive_ratio",
                                f"{info.filename} inflates beyond its declared size or the ratio limit",
                            )
                        digest.update(block)
                        spooled.write(block)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                raise ArchiveRejected(
                    "archive_corrupt", f"{info.filename} cannot be unpacked: {exc}"
                ) from exc
            total += size
            spooled.seek(0)
            entries[-1].size, entries[-1].sha256 = size, digest.hexdigest()
