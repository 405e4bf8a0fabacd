"""Object storage: one `ObjectStore` interface, a local-folder and an S3 implementation.

Every object lives under `tenants/<tenant>/projects/<project>/...`; tenant code gets a
`ProjectStore`, which can only build keys inside its own prefix.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.settings import Settings, get_settings

if TYPE_CHECKING:  # minio and urllib3 (~0.15 s to import) load only when an S3 store is built.
    import urllib3
    from minio import Minio

__all__ = [
    "MAX_KEY_BYTES",
    "SLUG_RE",
    "InvalidKey",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreResource",
    "ProjectStore",
    "S3ObjectStore",
    "build_object_store",
    "project_prefix",
    "validate_key",
    "validate_prefix",
    "validate_slug",
]

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

# S3's own limit on key length, counted in UTF-8 bytes.
MAX_KEY_BYTES = 1024

# Reserved so the local store can tell its in-flight temp files from real objects.
TMP_SUFFIX = ".privatune-tmp"

CHUNK_SIZE = 1024 * 1024

# minio needs a part size for streams of unknown length; 10 MiB x 10,000 parts = ~100 GB max.
S3_PART_SIZE = 10 * 1024 * 1024

BACKENDS = ("local", "s3")

PathLike = str | os.PathLike[str]


class InvalidKey(ValueError):
    """A key or prefix that is malformed or would leave its allowed area."""


class ObjectNotFound(KeyError):
    """No object under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        # KeyError's default str() is the repr of its argument; say what happened instead.
        return f"object not found: {self.key!r}"


def validate_slug(value: str, what: str) -> str:
    """Return `value` if it is a valid slug (tenant or project id), else raise ValueError."""
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-40 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def project_prefix(tenant: str, project: str) -> str:
    """The key prefix holding everything of one tenant's project (ends with '/')."""
    validate_slug(tenant, "tenant")
    validate_slug(project, "project")
    return f"tenants/{tenant}/projects/{project}/"


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise InvalidKey."""
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKey("key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key is longer than {MAX_KEY_BYTES} bytes: {key[:60]!r}...")
    if key.startswith("/"):
        raise InvalidKey(f"key must be relative, not start with '/': {key!r}")
    if "\\" in key:
        raise InvalidKey(f"key must not contain a backslash: {key!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKey(f"key must not contain control characters: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"key must not contain empty, '.' or '..' segments: {key!r}")
        if segment.endswith(TMP_SUFFIX):
            raise InvalidKey(f"key segments must not end with {TMP_SUFFIX!r}: {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is '' or a valid key, optionally ending with '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/") if isinstance(prefix, str) else prefix)
    return prefix


class _ExactReader(io.RawIOBase):
    """Counts what is read; with a length, stops there and refuses a stream that ends early."""

    def __init__(self, stream: BinaryIO, length: int | None) -> None:
        super().__init__()
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0 or None, not {length}")
        self._stream = stream
        self._length = length
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK_SIZE
        if self._length is not None:
            size = min(size, self._length - self.count)
            if size == 0:
                return b""
        data = self._stream.read(size)
        if not data and self._length is not None:
            raise ValueError(f"stream ended after {self.count} of {self._length} bytes")
        self.count += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ObjectStore(abc.ABC):
    """Flat key -> bytes storage. Keys are full keys, checked by `validate_key`."""

    @abc.abstractmethod
    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        """Store a stream without holding it all in memory; return the bytes written.

        With `length`, exactly that many bytes are read (ValueError if the stream is shorter).
        """

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's content; ObjectNotFound if missing."""

    @abc.abstractmethod
    def download_file(self, key: str, path: PathLike) -> None:
        """Stream the object to `path` (replaced atomically); ObjectNotFound if missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; ObjectNotFound if missing."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys starting with `prefix` (at any depth), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; return how many."""
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Store `data` under `key`, replacing any existing object."""
        self.put_stream(key, io.BytesIO(data), len(data), content_type)

    def put_file(
        self, key: str, path: PathLike, content_type: str = "application/octet-stream"
    ) -> None:
        """Store the file at `path` under `key`."""
        with open(path, "rb") as fh:
            self.put_stream(key, fh, os.fstat(fh.fileno()).st_size, content_type)

    def put_text(
        self, key: str, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        """Store `text` as UTF-8."""
        self.put_bytes(key, text.encode("utf-8"), content_type)

    def get_text(self, key: str) -> str:
        """The object decoded as UTF-8."""
        return self.get_bytes(key).decode("utf-8")

    def put_json(self, key: str, obj: Any) -> None:
        """Store `obj` as indented UTF-8 JSON; unknown types (datetime, Path, ...) become str."""
        text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str)
        self.put_bytes(key, text.encode("utf-8"), "application/json")

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON."""
        return json.loads(self.get_bytes(key))


class LocalObjectStore(ObjectStore):
    """Objects as files under `root`, at the same paths as their keys."""

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        # Resolve so a symlink planted inside the root cannot lead reads or writes outside it.
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"key {key!r} resolves outside the store root")
        return path

    def _write_atomically(self, path: Path, write: Callable[[BinaryIO], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target so os.replace is an atomic rename: readers see the old
        # file or the complete new one, never a partial write. mkstemp's 0600 mode keeps
        # tenant data private to the service's user.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        path = self._path(key)
        reader = _ExactReader(stream, length)
        self._write_atomically(path, lambda fh: shutil.copyfileobj(reader, fh, CHUNK_SIZE))
        return reader.count

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def download_file(self, key: str, path: PathLike) -> None:
        source = self._path(key)
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed below; open first to map a miss
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        with src:
            target = Path(path)
            self._write_atomically(target, lambda fh: shutil.copyfileobj(src, fh, CHUNK_SIZE))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path.stat().st_size

    def list_keys(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        # Prefixes match as strings (as in S3), so walk from the deepest whole folder only.
        folder = prefix[: prefix.rfind("/") + 1]
        base = (self.root / folder).resolve() if folder else self.root
        if not base.is_relative_to(self.root):
            raise InvalidKey(f"prefix {prefix!r} resolves outside the store root")
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if name.endswith(TMP_SUFFIX):
                    continue
                full = Path(dirpath) / name
                if full.is_symlink() and not full.resolve().is_relative_to(self.root):
                    continue
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        # S3 has no folders; drop the ones left empty so listings and disk stay tidy.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class S3ObjectStore(ObjectStore):
    """Objects in one bucket of an S3-compatible server (MinIO, AWS S3, ...)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        if "://" in endpoint:
            raise ValueError(f"S3 endpoint must be host:port without a scheme, got {endpoint!r}")
        from minio import Minio
        from minio.helpers import check_bucket_name

        # Fail at construction, not on the first upload, for a name S3 would refuse.
        check_bucket_name(bucket)
        self.endpoint = endpoint
        self.bucket = bucket
        self.client: Minio = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region or None,
            http_client=_http_client(),
        )
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def _ensure_bucket(self) -> None:
        # Lazily, so building the store (e.g. at resource setup) does no network I/O.
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            from minio.error import S3Error

            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    # Another process created it between our check and our create.
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        validate_key(key)
        self._ensure_bucket()
        reader = _ExactReader(stream, length)
        self.client.put_object(
            self.bucket,
            key,
            reader,  # type: ignore[arg-type]
            length=-1 if length is None else length,
            content_type=content_type,
            part_size=S3_PART_SIZE,
        )
        return reader.count

    def get_bytes(self, key: str) -> bytes:
        with self._get(key) as response:
            return response.read()

    def download_file(self, key: str, path: PathLike) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._get(key) as response:
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=TMP_SUFFIX)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in response.stream(CHUNK_SIZE):
                        fh.write(chunk)
                os.replace(tmp_name, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
                raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        validate_key(key)
        self._ensure_bucket()
        from minio.error import S3Error

        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(key) from None
            raise
        return int(stat.size or 0)

    def list_keys(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        self._ensure_bucket()
        objects = self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return sorted(obj.object_name for obj in objects if obj.object_name and not obj.is_dir)

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        # S3 DELETE succeeds for a missing key, which is the contract we want.
        self.client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        if not keys:
            return 0
        from minio.deleteobjects import DeleteObject

        # remove_objects is lazy (batches of 1000): consuming it performs the deletes.
        errors = list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        if errors:
            detail = "; ".join(f"{e.name}: {e.code} {e.message}" for e in errors[:5])
            raise RuntimeError(f"failed to delete {len(errors)} of {len(keys)} objects: {detail}")
        return len(keys)

    def _get(self, key: str) -> _Response:
        validate_key(key)
        self._ensure_bucket()
        from minio.error import S3Error

        try:
            return _Response(self.client.get_object(self.bucket, key))
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(key) from None
            raise


class _Response:
    """Closes a urllib3 response and returns its connection to the pool."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __enter__(self) -> Any:
        return self._response

    def __exit__(self, *_: object) -> None:
        self._response.close()
        self._response.release_conn()


def _http_client() -> urllib3.PoolManager:
    import certifi
    import urllib3

    # minio's default waits 5 minutes per read and retries 5 times; fail faster than that.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=60.0),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=3,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class ProjectStore:
    """One tenant's project: the object store seen through its prefix, with relative keys."""

    def __init__(self, store: ObjectStore, tenant: str, project: str) -> None:
        self.store = store
        self.tenant = tenant
        self.project = project
        self.prefix = project_prefix(tenant, project)

    def __repr__(self) -> str:
        return f"ProjectStore({self.store!r}, prefix={self.prefix!r})"

    def key(self, relative: str) -> str:
        """The full key of `relative`; InvalidKey for anything that could leave the prefix."""
        validate_key(relative)
        return validate_key(self.prefix + relative)

    def put_bytes(
        self, relative: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.store.put_bytes(self.key(relative), data, content_type)

    def put_stream(
        self,
        relative: str,
        stream: BinaryIO,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        return self.store.put_stream(self.key(relative), stream, length, content_type)

    def put_file(
        self, relative: str, path: PathLike, content_type: str = "application/octet-stream"
    ) -> None:
        self.store.put_file(self.key(relative), path, content_type)

    def get_bytes(self, relative: str) -> bytes:
        return self.store.get_bytes(self.key(relative))

    def download_file(self, relative: str, path: PathLike) -> None:
        self.store.download_file(self.key(relative), path)

    def exists(self, relative: str) -> bool:
        return self.store.exists(self.key(relative))

    def size(self, relative: str) -> int:
        return self.store.size(self.key(relative))

    def list_keys(self, relative_prefix: str = "") -> list[str]:
        """Relative keys under `relative_prefix`, sorted."""
        validate_prefix(relative_prefix)
        start = len(self.prefix)
        return [key[start:] for key in self.store.list_keys(self.prefix + relative_prefix)]

    def delete(self, relative: str) -> None:
        self.store.delete(self.key(relative))

    def delete_prefix(self, relative_prefix: str) -> int:
        """Delete under `relative_prefix`; '' deletes the whole project."""
        validate_prefix(relative_prefix)
        return self.store.delete_prefix(self.prefix + relative_prefix)

    def put_json(self, relative: str, obj: Any) -> None:
        self.store.put_json(self.key(relative), obj)

    def get_json(self, relative: str) -> Any:
        return self.store.get_json(self.key(relative))

    def put_text(
        self, relative: str, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.store.put_text(self.key(relative), text, content_type)

    def get_text(self, relative: str) -> str:
        return self.store.get_text(self.key(relative))


def build_object_store(settings: Settings | None = None) -> ObjectStore:
    """The object store the settings ask for (PRIVATUNE_OBJECT_STORE and friends)."""
    settings = settings or get_settings()
    backend = settings.object_store
    if backend == "local":
        return LocalObjectStore(settings.store_root)
    if backend == "s3":
        missing = [
            env
            for env, value in (
                ("PRIVATUNE_S3_ENDPOINT", settings.s3_endpoint),
                ("PRIVATUNE_S3_ACCESS_KEY", settings.s3_access_key),
                ("PRIVATUNE_S3_SECRET_KEY", settings.s3_secret_key),
                ("PRIVATUNE_S3_BUCKET", settings.s3_bucket),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"object store 's3' needs {', '.join(missing)} to be set")
        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region or None,
        )
    raise ValueError(
        f"unknown object store {backend!r} (PRIVATUNE_OBJECT_STORE): "
        f"use one of {', '.join(BACKENDS)}"
    )


class ObjectStoreResource(dg.ConfigurableResource):
    """The object store for Dagster assets; unset fields come from the privatune settings."""

    backend: str | None = Field(
        default=None, description="`local` or `s3`. Default: PRIVATUNE_OBJECT_STORE."
    )
    root: str | None = Field(
        default=None, description="Folder of the local store. Default: PRIVATUNE_STORE_ROOT."
    )
    endpoint: str | None = Field(
        default=None, description="S3 host:port, no scheme. Default: PRIVATUNE_S3_ENDPOINT."
    )
    access_key: str | None = Field(
        default=None, description="S3 access key. Default: PRIVATUNE_S3_ACCESS_KEY."
    )
    secret_key: str | None = Field(
        default=None,
        description="S3 secret key; pass dg.EnvVar(...). Default: PRIVATUNE_S3_SECRET_KEY.",
    )
    bucket: str | None = Field(
        default=None, description="S3 bucket, created if missing. Default: PRIVATUNE_S3_BUCKET."
    )
    secure: bool | None = Field(
        default=None, description="Use HTTPS for S3. Default: PRIVATUNE_S3_SECURE."
    )
    region: str | None = Field(default=None, description="S3 region. Default: PRIVATUNE_S3_REGION.")

    _store: ObjectStore | None = PrivateAttr(default=None)

    def resolved_settings(self) -> Settings:
        """The process settings with this resource's explicit fields applied."""
        overrides: dict[str, Any] = {
            "object_store": self.backend.strip().lower() if self.backend is not None else None,
            "store_root": Path(self.root).resolve() if self.root is not None else None,
            "s3_endpoint": self.endpoint,
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
            "s3_bucket": self.bucket,
            "s3_secure": self.secure,
            "s3_region": self.region,
        }
        # Read at run time, never at import, so env changes and EnvVar fields take effect.
        return dataclasses.replace(
            get_settings(), **{k: v for k, v in overrides.items() if v is not None}
        )

    def get_store(self) -> ObjectStore:
        """The store, built on first use and then reused by this resource instance."""
        if self._store is None:
            self._store = build_object_store(self.resolved_settings())
        return self._store

    def project(self, tenant: str, project: str) -> ProjectStore:
        """A store scoped to one tenant's project."""
        return ProjectStore(self.get_store(), tenant, project)
