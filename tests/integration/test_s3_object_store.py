"""S3ObjectStore against a real S3-compatible server (nanio, started per module)."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from resources.object_store import (
    InvalidKey,
    ObjectNotFound,
    ObjectStoreResource,
    ProjectStore,
    S3ObjectStore,
)
from tests.s3server import S3ServerInfo


class ChunkedStream(io.RawIOBase):
    """A non-seekable stream of deterministic bytes, produced on demand."""

    def __init__(self, total: int, chunk: int = 256 * 1024) -> None:
        super().__init__()
        self.remaining = total
        self.chunk = chunk
        self.counter = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.remaining == 0:
            return b""
        size = self.chunk if size is None or size < 0 else min(size, self.chunk)
        size = min(size, self.remaining)
        block = hashlib.sha256(str(self.counter).encode()).digest() * (size // 32 + 1)
        data = block[:size]
        self.counter += 1
        self.remaining -= size
        self.digest.update(data)
        return data


def raw_client(server: S3ServerInfo) -> Minio:
    return Minio(
        server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False
    )


@pytest.fixture
def bucket() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def store(s3_server: S3ServerInfo, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
    )


def test_bucket_is_created_on_first_use(s3_server: S3ServerInfo, store: S3ObjectStore) -> None:
    client = raw_client(s3_server)
    assert not client.bucket_exists(store.bucket)
    store.put_bytes("k/v", b"1")
    assert client.bucket_exists(store.bucket)


def test_existing_bucket_is_reused(s3_server: S3ServerInfo, bucket: str) -> None:
    raw_client(s3_server).make_bucket(bucket)
    first = S3ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, bucket)
    first.put_bytes("k/v", b"kept")
    # A second store (another process) finds the bucket and its objects.
    second = S3ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, bucket)
    assert second.get_bytes("k/v") == b"kept"


def test_bucket_creation_tolerates_a_race(s3_server: S3ServerInfo, bucket: str) -> None:
    store = S3ObjectStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, bucket)
    real_exists = store.client.bucket_exists
    # Another process creates the bucket between our existence check and our create.
    store.client.bucket_exists = lambda name: (raw_client(s3_server).make_bucket(name), False)[1]
    try:
        store.put_bytes("k/v", b"after race")
    finally:
        store.client.bucket_exists = real_exists
    assert store.get_bytes("k/v") == b"after race"


def test_round_trips(store: S3ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("tenants/a/projects/p/raw/doc.pdf", b"%PDF \x00\xff")
    assert store.get_bytes("tenants/a/projects/p/raw/doc.pdf") == b"%PDF \x00\xff"
    assert store.exists("tenants/a/projects/p/raw/doc.pdf")
    assert store.size("tenants/a/projects/p/raw/doc.pdf") == 7

    store.put_json("meta.json", {"b": 1, "a": [1, "é"]})
    assert store.get_json("meta.json") == {"b": 1, "a": [1, "é"]}
    store.put_text("notes/ü ñ.txt", "Ünïcödé ✓")
    assert store.get_text("notes/ü ñ.txt") == "Ünïcödé ✓"

    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 4096)
    store.put_file("files/in.bin", source)
    target = tmp_path / "out" / "copy.bin"
    store.download_file("files/in.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]  # no temp file left

    store.put_bytes("k/empty", b"")
    assert store.get_bytes("k/empty") == b""
    assert store.size("k/empty") == 0


def test_content_type_is_stored(store: S3ObjectStore) -> None:
    store.put_json("meta.json", {"a": 1})
    store.put_bytes("doc.pdf", b"%PDF", content_type="application/pdf")
    assert store.client.stat_object(store.bucket, "meta.json").content_type == "application/json"
    assert store.client.stat_object(store.bucket, "doc.pdf").content_type == "application/pdf"


def test_stream_of_unknown_length_uses_multipart(store: S3ObjectStore) -> None:
    total = 12 * 1024 * 1024 + 7  # more than one 10 MiB part
    stream = ChunkedStream(total)
    assert store.put_stream("big/blob.bin", stream) == total
    assert store.size("big/blob.bin") == total
    assert hashlib.sha256(store.get_bytes("big/blob.bin")).digest() == stream.digest.digest()
    # An S3 multipart ETag ends with the part count.
    etag = store.client.stat_object(store.bucket, "big/blob.bin").etag
    assert etag is not None and etag.endswith("-2")


def test_stream_with_length(store: S3ObjectStore) -> None:
    source = io.BytesIO(b"0123456789")
    assert store.put_stream("k/part", source, length=4) == 4
    assert store.get_bytes("k/part") == b"0123"
    with pytest.raises((ValueError, OSError)):
        store.put_stream("k/short", io.BytesIO(b"abc"), length=10)
    assert not store.exists("k/short")


def test_list_keys(store: S3ObjectStore) -> None:
    for key in ["p/z.txt", "p/a/deep/x.bin", "p/b.txt", "q/other.txt", "pp/not-p.txt"]:
        store.put_bytes(key, b"1")
    assert store.list_keys("p/") == ["p/a/deep/x.bin", "p/b.txt", "p/z.txt"]
    assert store.list_keys("") == [
        "p/a/deep/x.bin",
        "p/b.txt",
        "p/z.txt",
        "pp/not-p.txt",
        "q/other.txt",
    ]
    assert store.list_keys("missing/") == []


def test_delete_and_delete_prefix(store: S3ObjectStore) -> None:
    for key in ["del/a", "del/b/c", "del/b/d", "keep/a", "delx/a"]:
        store.put_bytes(key, b"1")
    store.delete("keep/a")
    assert not store.exists("keep/a")
    store.delete("keep/a")  # already gone: not an error
    assert store.delete_prefix("del/") == 3
    assert store.list_keys("") == ["delx/a"]
    assert store.delete_prefix("del/") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda s, tmp: s.get_bytes("no/such"),
        lambda s, tmp: s.size("no/such"),
        lambda s, tmp: s.get_json("no/such"),
        lambda s, tmp: s.download_file("no/such", tmp / "out.bin"),
    ],
    ids=["get_bytes", "size", "get_json", "download_file"],
)
def test_missing_object_raises_object_not_found(store: S3ObjectStore, tmp_path: Path, call) -> None:
    store.put_bytes("no/other", b"1")
    with pytest.raises(ObjectNotFound, match="no/such"):
        call(store, tmp_path)
    assert not store.exists("no/such")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a\\b", "a/\x00", "k" * 1025])
def test_invalid_keys_never_reach_the_server(store: S3ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    assert store.list_keys("") == []


def test_wrong_secret_key_is_an_error(s3_server: S3ServerInfo, store: S3ObjectStore) -> None:
    store.put_bytes("k/v", b"original")  # creates the bucket with good credentials
    impostor = S3ObjectStore(
        s3_server.endpoint, s3_server.access_key, "not-the-secret", store.bucket
    )
    with pytest.raises(S3Error) as info:
        impostor.put_bytes("k/v", b"overwritten")
    assert info.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
    with pytest.raises(S3Error):
        impostor.get_bytes("k/v")
    assert store.get_bytes("k/v") == b"original"


def test_unknown_access_key_is_an_error(s3_server: S3ServerInfo, bucket: str) -> None:
    impostor = S3ObjectStore(s3_server.endpoint, "nobody", s3_server.secret_key, bucket)
    with pytest.raises(S3Error):
        impostor.list_keys("")
    assert not raw_client(s3_server).bucket_exists(bucket)


def test_project_store_isolation(store: S3ObjectStore) -> None:
    acme = ProjectStore(store, "acme", "bot")
    globex = ProjectStore(store, "globex", "bot")
    acme_bot2 = ProjectStore(store, "acme", "bot2")
    acme.put_bytes("raw/a.pdf", b"acme")
    acme.put_json("meta.json", {"n": 1})
    globex.put_bytes("raw/g.pdf", b"globex")
    acme_bot2.put_bytes("raw/b2.pdf", b"bot2")

    assert acme.list_keys() == ["meta.json", "raw/a.pdf"]
    assert globex.list_keys() == ["raw/g.pdf"]
    assert acme_bot2.list_keys() == ["raw/b2.pdf"]
    assert store.get_bytes("tenants/acme/projects/bot/raw/a.pdf") == b"acme"
    assert not globex.exists("raw/a.pdf")
    with pytest.raises(ObjectNotFound):
        globex.get_bytes("raw/a.pdf")
    with pytest.raises(InvalidKey):
        globex.get_bytes("../../../acme/projects/bot/raw/a.pdf")
    with pytest.raises(InvalidKey):
        globex.list_keys("../../")

    assert globex.delete_prefix("") == 1
    assert acme.get_bytes("raw/a.pdf") == b"acme"
    assert acme_bot2.get_bytes("raw/b2.pdf") == b"bot2"


def test_resource_builds_an_s3_store(s3_server: S3ServerInfo, bucket: str) -> None:
    resource = ObjectStoreResource(
        backend="s3",
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
        secure=False,
    )
    project = resource.project("acme", "bot")
    project.put_text("hello.txt", "hi")
    assert isinstance(resource.get_store(), S3ObjectStore)
    assert (
        raw_client(s3_server).get_object(bucket, "tenants/acme/projects/bot/hello.txt").read()
        == b"hi"
    )
