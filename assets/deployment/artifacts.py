"""Adapters fetched from the object store into a local cache, checksums verified."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

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


def local_file(store: ProjectStore, key: str, sha256: str, cache_root: Path) -> Path:
    """One stored file (e.g. a GGUF LoRA) in the local cache, checksum verified."""
    target = cache_root / store.tenant / store.project / sha256[:2] / f"{sha256}-{Path(key).name}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        store.download_file(key, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if digest != sha256:
            raise ArtifactCorrupt(f"{key}: sha256 {digest} != {sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def adapter_ref(store: ProjectStore, manifest: dict, runtime_kind: str, cache_root: Path) -> Any:
    """The deployment's (or candidate's) adapter in the form its runtime reads."""
    from resources.runtimes import AdapterRef, RuntimeUnavailable

    name = f"{store.tenant}/{store.project}/{manifest['adapter_version']}"
    if runtime_kind == "transformers":
        return AdapterRef(name, peft_dir=local_adapter_dir(store, manifest, cache_root))
    if runtime_kind == "llama_cpp":
        gguf = manifest.get("gguf_lora")
        if not gguf or not gguf.get("key"):
            raise RuntimeUnavailable(
                f"adapter {manifest['adapter_version']} has no GGUF LoRA export"
                + (f" ({gguf['error']})" if gguf and gguf.get("error") else "")
                + "; serve it with the transformers runtime"
            )
        return AdapterRef(
            name, gguf_lora=local_file(store, gguf["key"], gguf["sha256"], cache_root)
        )
    runtime = manifest.get("runtime") or {}
    return AdapterRef(name, upstream_model=runtime.get("model"))
