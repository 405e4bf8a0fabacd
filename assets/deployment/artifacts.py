"""Adapters fetched from the object store into a local cache, checksums verified."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from resources.object_store import ProjectStore


class ArtifactCorrupt(RuntimeError):
    """A stored file does not match the checksum its manifest records."""


def local_adapter_dir(store: ProjectStore, manifest: dict, cache_root: Path) -> Path:
    """The adapter's folder on local disk (downloaded once per tenant/project/version)."""
    version = manifest["adapter_version"]
    target = cache_root / store.tenant / store.project / version
    if (target / ".verified").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        for rel, info in manifest["files"].items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            store.download_file(f"{manifest['adapter_key']}/{rel}", path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != info["sha256"]:
                raise ArtifactCorrupt(
                    f"{rel} of adapter {version}: sha256 {digest} != {info['sha256']}"
                )
        (tmp / ".verified").write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
