"""LocalObjectStore, ProjectStore, key and slug validation, and the store factory."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from pathlib import Path

import dagster as dg
import pytest

from resources.object_store import (
    InvalidKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreResource,
    ProjectStore,
    S3ObjectStore,
    build_object_store,
    project_prefix,
    validate_key,
    validate_slug,
)
from resources.settings import get_settings


class ChunkedStream(io.RawIOBase):
    """A non-seekable stream of deterministic bytes, produced on demand."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
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


class FailingStream(io.RawIOBase):
    """Yields some bytes, then raises, as a dropped upload would."""

    def __init__(self, before_failure: int) -> None:
        super().__init__()
        self.left = before_failure

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionError("client went away")
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return b"x" * size


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in list(os.environ):
        if name.startswith("PRIVATUNE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


# --- round trips -------------------------------------------------------------------------


def test_bytes_round_trip(store: LocalObjectStore) -> None:
    store.put_bytes("tenants/a/projects/p/raw/doc.pdf", b"%PDF-1.7 \x00\xff")
    assert store.get_bytes("tenants/a/projects/p/raw/doc.pdf") == b"%PDF-1.7 \x00\xff"
    assert store.exists("tenants/a/projects/p/raw/doc.pdf")
    assert store.size("tenants/a/projects/p/raw/doc.pdf") == 11
    # Same layout on disk as the key, so an operator can find a file.
    assert (store.root / "tenants/a/projects/p/raw/doc.pdf").read_bytes() == b"%PDF-1.7 \x00\xff"


def test_put_overwrites(store: LocalObjectStore) -> None:
    store.put_bytes("k/v", b"old")
    store.put_bytes("k/v", b"new")
    assert store.get_bytes("k/v") == b"new"


def test_empty_object(store: LocalObjectStore) -> None:
    store.put_bytes("k/empty", b"")
    assert store.exists("k/empty")
    assert store.size("k/empty") == 0
    assert store.get_bytes("k/empty") == b""


def test_stream_of_unknown_length(store: LocalObjectStore) -> None:
    stream = ChunkedStream(5 * 1024 * 1024 + 123)
    written = store.put_stream("big/blob.bin", stream)
    assert written == 5 * 1024 * 1024 + 123
    assert store.size("big/blob.bin") == written
    assert hashlib.sha256(store.get_bytes("big/blob.bin")).digest() == stream.digest.digest()


def test_stream_with_length_stops_there(store: LocalObjectStore) -> None:
    source = io.BytesIO(b"0123456789")
    assert store.put_stream("k/part", source, length=4) == 4
    assert store.get_bytes("k/part") == b"0123"
    assert source.read() == b"456789"  # the rest is left for the caller


def test_stream_shorter_than_length_is_refused(store: LocalObjectStore) -> None:
    with pytest.raises(ValueError, match="ended after 3 of 10 bytes"):
        store.put_stream("k/short", io.BytesIO(b"abc"), length=10)
    assert not store.exists("k/short")


def test_failed_overwrite_keeps_old_object_and_leaves_no_temp_file(
    store: LocalObjectStore,
) -> None:
    store.put_bytes("k/doc", b"complete old version")
    with pytest.raises(ConnectionError):
        store.put_stream("k/doc", FailingStream(3 * 1024 * 1024))
    assert store.get_bytes("k/doc") == b"complete old version"
    assert sorted(p.name for p in (store.root / "k").iterdir()) == ["doc"]
    assert store.list_keys("") == ["k/doc"]


def test_put_file_and_download_file(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"line 1\nline 2\n" * 1000)
    store.put_file("files/in.txt", source)
    target = tmp_path / "out" / "nested" / "copy.txt"
    store.download_file("files/in.txt", target)
    assert target.read_bytes() == source.read_bytes()


def test_json_round_trip(store: LocalObjectStore) -> None:
    obj = {"z": 1, "a": ["é", 2.5, None], "when": dt.date(2025, 1, 2), "path": Path("/x")}
    store.put_json("meta/run.json", obj)
    assert store.get_json("meta/run.json") == {
        "z": 1,
        "a": ["é", 2.5, None],
        "when": "2025-01-02",
        "path": "/x",
    }
    raw = store.get_bytes("meta/run.json").decode("utf-8")
    assert raw.index('"z"') < raw.index('"a"')  # insertion order kept
    assert '\n  "z": 1' in raw  # indented for humans


def test_text_round_trip(store: LocalObjectStore) -> None:
    store.put_text("notes/readme.md", "Ünïcödé ✓\n")
    assert store.get_text("notes/readme.md") == "Ünïcödé ✓\n"
    assert store.get_bytes("notes/readme.md") == "Ünïcödé ✓\n".encode()


# --- listing and deleting ----------------------------------------------------------------


def test_list_keys_is_recursive_sorted_and_full(store: LocalObjectStore) -> None:
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
    # Prefixes match as strings, the way S3 does.
    assert store.list_keys("p") == ["p/a/deep/x.bin", "p/b.txt", "p/z.txt", "pp/not-p.txt"]
    assert store.list_keys("p/a/de") == ["p/a/deep/x.bin"]
    assert store.list_keys("missing/") == []


def test_delete(store: LocalObjectStore) -> None:
    store.put_bytes("d/one/two.txt", b"x")
    store.delete("d/one/two.txt")
    assert not store.exists("d/one/two.txt")
    assert store.list_keys("d/") == []
    assert not (store.root / "d").exists()  # no empty folders left behind
    store.delete("d/one/two.txt")  # already gone: not an error
    store.delete("never/existed")


def test_delete_prefix(store: LocalObjectStore) -> None:
    for key in ["del/a", "del/b/c", "del/b/d", "keep/a", "delx/a"]:
        store.put_bytes(key, b"1")
    assert store.delete_prefix("del/") == 3
    assert store.list_keys("") == ["delx/a", "keep/a"]
    assert store.delete_prefix("del/") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_bytes("no/such"),
        lambda s: s.size("no/such"),
        lambda s: s.get_json("no/such"),
        lambda s: s.get_text("no/such"),
        lambda s: s.download_file("no/such", s.root.parent / "out.bin"),
    ],
    ids=["get_bytes", "size", "get_json", "get_text", "download_file"],
)
def test_missing_object_raises_object_not_found(store: LocalObjectStore, call) -> None:
    with pytest.raises(ObjectNotFound, match="no/such") as info:
        call(store)
    assert isinstance(info.value, KeyError)
    assert info.value.key == "no/such"
    assert not store.exists("no/such")


def test_folder_is_not_an_object(store: LocalObjectStore) -> None:
    store.put_bytes("dir/file", b"1")
    assert not store.exists("dir")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("dir")
    with pytest.raises(ObjectNotFound):
        store.size("dir")


# --- key validation ----------------------------------------------------------------------


BAD_KEYS = [
    "",
    "../x",
    "a/../../x",
    "/abs",
    "a//b",
    "a/",
    "a/./b",
    ".",
    "a\\b",
    "a/\x00",
    "a/b\nc",
    "a/\x7f",
    "k" * 1025,
    "é" * 513,  # 1026 UTF-8 bytes
    "a/.x.privatune-tmp",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_invalid_keys_are_refused(store: LocalObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        store.get_bytes(key)
    with pytest.raises(InvalidKey):
        store.exists(key)
    with pytest.raises(InvalidKey):
        store.delete(key)
    assert store.list_keys("") == []


# 1024 bytes in all, in segments short enough for a local filesystem (255 bytes a name).
LONGEST_KEY = "/".join(["k" * 200] * 5) + "/" + "k" * 19


@pytest.mark.parametrize("key", ["a", "a/b.c", "x/.hidden", "a..b/c", LONGEST_KEY, "dir/ü ñ.pdf"])
def test_valid_keys_are_accepted(store: LocalObjectStore, key: str) -> None:
    assert validate_key(key) == key
    store.put_bytes(key, b"ok")
    assert store.get_bytes(key) == b"ok"


def test_longest_key_is_exactly_the_limit() -> None:
    assert len(LONGEST_KEY.encode()) == 1024


def test_invalid_key_is_a_value_error() -> None:
    assert issubclass(InvalidKey, ValueError)


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a//", "a/../"])
def test_invalid_prefixes_are_refused(store: LocalObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        store.list_keys(prefix)
    with pytest.raises(InvalidKey):
        store.delete_prefix(prefix)


def test_symlink_out_of_the_root_is_refused(store: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("other tenant's data")
    (store.root / "tenants").mkdir()
    (store.root / "tenants" / "evil").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidKey, match="outside the store root"):
        store.get_bytes("tenants/evil/secret.txt")
    with pytest.raises(InvalidKey, match="outside the store root"):
        store.put_bytes("tenants/evil/planted.txt", b"x")
    with pytest.raises(InvalidKey, match="outside the store root"):
        store.list_keys("tenants/evil/")
    with pytest.raises(InvalidKey):
        store.delete("tenants/evil/secret.txt")
    assert not (outside / "planted.txt").exists()
    assert (outside / "secret.txt").exists()
    # A broad listing neither follows the link nor reports its target's files.
    assert store.list_keys("") == []


def test_symlinked_file_out_of_the_root_is_refused(store: LocalObjectStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    (store.root / "t").mkdir()
    (store.root / "t" / "link.txt").symlink_to(secret)
    with pytest.raises(InvalidKey):
        store.get_bytes("t/link.txt")
    with pytest.raises(InvalidKey):
        store.put_bytes("t/link.txt", b"overwrite")
    assert secret.read_text() == "host file"
    assert store.list_keys("") == []


# --- slugs and ProjectStore --------------------------------------------------------------


@pytest.mark.parametrize("slug", ["acme", "a", "a-1", "a--b", "0", "x" * 40, "9lives"])
def test_valid_slugs(slug: str) -> None:
    assert validate_slug(slug, "tenant") == slug


@pytest.mark.parametrize(
    "slug", ["", "Acme", "A", "a_b", "-a", "a-", "a b", "a/b", "..", "x" * 41, "é"]
)
def test_invalid_slugs(slug: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant"):
        validate_slug(slug, "tenant")


def test_project_prefix(store: LocalObjectStore) -> None:
    assert project_prefix("acme", "faq-bot") == "tenants/acme/projects/faq-bot/"
    with pytest.raises(ValueError, match="invalid project"):
        project_prefix("acme", "../x")
    with pytest.raises(ValueError, match="invalid tenant"):
        ProjectStore(store, "ACME", "p")
    with pytest.raises(ValueError, match="invalid project"):
        ProjectStore(store, "acme", "p/../../x")


def test_project_store_uses_its_prefix(store: LocalObjectStore) -> None:
    ps = ProjectStore(store, "acme", "bot")
    assert ps.prefix == "tenants/acme/projects/bot/"
    assert ps.key("raw/a.pdf") == "tenants/acme/projects/bot/raw/a.pdf"
    ps.put_bytes("raw/a.pdf", b"pdf")
    assert store.get_bytes("tenants/acme/projects/bot/raw/a.pdf") == b"pdf"
    assert ps.get_bytes("raw/a.pdf") == b"pdf"
    assert ps.exists("raw/a.pdf")
    assert ps.size("raw/a.pdf") == 3


def test_project_store_round_trips(store: LocalObjectStore, tmp_path: Path) -> None:
    ps = ProjectStore(store, "acme", "bot")
    ps.put_json("meta.json", {"n": 1})
    ps.put_text("notes.txt", "hi")
    assert ps.put_stream("blob", io.BytesIO(b"abcdef")) == 6
    source = tmp_path / "src.bin"
    source.write_bytes(b"file body")
    ps.put_file("files/src.bin", source)
    ps.download_file("files/src.bin", tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == b"file body"
    assert ps.get_json("meta.json") == {"n": 1}
    assert ps.get_text("notes.txt") == "hi"
    assert ps.list_keys() == ["blob", "files/src.bin", "meta.json", "notes.txt"]
    assert ps.list_keys("files/") == ["files/src.bin"]
    ps.delete("blob")
    assert not ps.exists("blob")
    with pytest.raises(ObjectNotFound):
        ps.get_bytes("blob")
    assert ps.delete_prefix("files/") == 1
    assert ps.list_keys() == ["meta.json", "notes.txt"]


@pytest.mark.parametrize(
    "relative",
    [
        "../../other-tenant/x",
        "../../../tenants/other/projects/bot/raw/a.pdf",
        "../bot2/x",
        "/tenants/other/projects/bot/x",
        "/etc/passwd",
        "a//b",
        "",
        "a\\..\\..\\x",
    ],
)
def test_project_store_refuses_keys_leaving_its_prefix(
    store: LocalObjectStore, relative: str
) -> None:
    ps = ProjectStore(store, "acme", "bot")
    with pytest.raises(InvalidKey):
        ps.key(relative)
    with pytest.raises(InvalidKey):
        ps.put_bytes(relative, b"x")
    with pytest.raises(InvalidKey):
        ps.get_bytes(relative)
    with pytest.raises(InvalidKey):
        ps.delete(relative)
    assert store.list_keys("") == []


@pytest.mark.parametrize("relative_prefix", ["../", "../../other/", "/x/"])
def test_project_store_refuses_listing_outside(
    store: LocalObjectStore, relative_prefix: str
) -> None:
    ps = ProjectStore(store, "acme", "bot")
    with pytest.raises(InvalidKey):
        ps.list_keys(relative_prefix)
    with pytest.raises(InvalidKey):
        ps.delete_prefix(relative_prefix)


def test_tenants_cannot_see_each_other(store: LocalObjectStore) -> None:
    acme = ProjectStore(store, "acme", "bot")
    globex = ProjectStore(store, "globex", "bot")
    # A project whose name starts with the other's must not leak through string prefixes.
    acme_bot2 = ProjectStore(store, "acme", "bot2")
    acme.put_bytes("raw/a.pdf", b"acme")
    globex.put_bytes("raw/g.pdf", b"globex")
    acme_bot2.put_bytes("raw/b2.pdf", b"bot2")

    assert acme.list_keys() == ["raw/a.pdf"]
    assert globex.list_keys() == ["raw/g.pdf"]
    assert acme_bot2.list_keys() == ["raw/b2.pdf"]
    assert not globex.exists("raw/a.pdf")
    with pytest.raises(ObjectNotFound):
        globex.get_bytes("raw/a.pdf")

    assert globex.delete_prefix("") == 1
    assert acme.get_bytes("raw/a.pdf") == b"acme"
    assert acme_bot2.get_bytes("raw/b2.pdf") == b"bot2"


# --- factory and Dagster resource --------------------------------------------------------


def test_build_object_store_defaults_to_local(clean_settings, tmp_path: Path) -> None:
    store = build_object_store()
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "home" / "objects").resolve()


def test_build_object_store_honours_store_root(clean_settings, tmp_path: Path) -> None:
    clean_settings.setenv("PRIVATUNE_STORE_ROOT", str(tmp_path / "elsewhere"))
    get_settings.cache_clear()
    store = build_object_store()
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "elsewhere").resolve()


def test_build_object_store_refuses_unknown_backend(clean_settings) -> None:
    clean_settings.setenv("PRIVATUNE_OBJECT_STORE", "gcs")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match=r"unknown object store 'gcs'.*local, s3"):
        build_object_store()


def test_build_object_store_s3_needs_endpoint_and_keys(clean_settings) -> None:
    clean_settings.setenv("PRIVATUNE_OBJECT_STORE", "s3")
    clean_settings.setenv("PRIVATUNE_S3_ACCESS_KEY", "ak")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="PRIVATUNE_S3_ENDPOINT, PRIVATUNE_S3_SECRET_KEY"):
        build_object_store()


def test_build_object_store_s3(clean_settings) -> None:
    clean_settings.setenv("PRIVATUNE_OBJECT_STORE", "S3")
    clean_settings.setenv("PRIVATUNE_S3_ENDPOINT", "127.0.0.1:1")
    clean_settings.setenv("PRIVATUNE_S3_ACCESS_KEY", "ak")
    clean_settings.setenv("PRIVATUNE_S3_SECRET_KEY", "sk")
    clean_settings.setenv("PRIVATUNE_S3_BUCKET", "my-bucket")
    get_settings.cache_clear()
    store = build_object_store()  # no network until first use
    assert isinstance(store, S3ObjectStore)
    assert store.bucket == "my-bucket"
    assert store.endpoint == "127.0.0.1:1"


def test_s3_store_refuses_a_scheme_in_the_endpoint() -> None:
    with pytest.raises(ValueError, match="without a scheme"):
        S3ObjectStore("http://127.0.0.1:9000", "ak", "sk", "bucket")


def test_resource_falls_back_to_settings_at_run_time(clean_settings, tmp_path: Path) -> None:
    resource = ObjectStoreResource()  # built before the env below is set
    clean_settings.setenv("PRIVATUNE_STORE_ROOT", str(tmp_path / "late"))
    get_settings.cache_clear()
    store = resource.get_store()
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "late").resolve()
    assert resource.get_store() is store  # cached per instance


def test_resource_fields_override_settings(clean_settings, tmp_path: Path) -> None:
    clean_settings.setenv("PRIVATUNE_OBJECT_STORE", "gcs")  # would fail if consulted
    get_settings.cache_clear()
    resource = ObjectStoreResource(backend="local", root=str(tmp_path / "explicit"))
    store = resource.get_store()
    assert isinstance(store, LocalObjectStore)
    assert store.root == (tmp_path / "explicit").resolve()
    ps = resource.project("acme", "bot")
    assert ps.prefix == "tenants/acme/projects/bot/"
    assert ps.store is store


def test_resource_in_a_dagster_run(clean_settings, tmp_path: Path) -> None:
    root = tmp_path / "dagster-objects"

    @dg.asset
    def corpus(object_store: ObjectStoreResource) -> None:
        """Writes one object through the resource."""
        object_store.project("acme", "bot").put_json("corpus/stats.json", {"docs": 3})

    result = dg.materialize(
        [corpus],
        resources={"object_store": ObjectStoreResource(backend="local", root=str(root))},
    )
    assert result.success
    assert LocalObjectStore(root).get_json("tenants/acme/projects/bot/corpus/stats.json") == {
        "docs": 3
    }
