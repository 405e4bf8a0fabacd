"""Training checkpoints in the object store, so a run whose process dies (kill -9, a lost
worker) resumes from its latest checkpoint when retried, losing at most one interval.

A checkpoint is a folder: the adapter weights (safetensors) and `trainer_state.pt` (optimiser
state, step, losses, token count, RNG states). Files are uploaded first; `latest.json` is
written last and names the complete checkpoint, so a checkpoint cut short by a kill is never
picked up. Older checkpoints beyond `keep` are deleted."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol


class Checkpoints(Protocol):
    every: int

    def latest(self, workdir: Path) -> tuple[int, Path] | None: ...

    def save(self, step: int, folder: Path) -> str: ...


class StoreCheckpoints:
    """Checkpoints of one run under `prefix` of a project's object store."""

    def __init__(self, store: Any, prefix: str, every: int, keep: int = 2):
        if every < 1:
            raise ValueError("checkpoint interval must be at least one step")
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.every = every
        self.keep = keep

    def _pointer(self) -> str:
        return f"{self.prefix}/latest.json"

    def latest(self, workdir: Path) -> tuple[int, Path] | None:
        """Download the latest complete checkpoint into `workdir`; None when there is none."""
        if not self.store.exists(self._pointer()):
            return None
        pointer = self.store.get_json(self._pointer())
        folder = workdir / f"step-{pointer['step']:06d}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name in pointer["files"]:
            self.store.download_file(f"{pointer['key']}/{name}", folder / name)
        return int(pointer["step"]), folder

    def save(self, step: int, folder: Path) -> str:
        key = f"{self.prefix}/step-{step:06d}"
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        for name in files:
            self.store.put_file(f"{key}/{name}", folder / name)
        self.store.put_json(self._pointer(), {"step": step, "key": key, "files": files})
        self._prune(keep_key=key)
        return key

    def _prune(self, keep_key: str) -> None:
        steps = sorted(
            {
                k.split("/")[-2]
                for k in self.store.list_keys(f"{self.prefix}/")
                if k.split("/")[-2].startswith("step-")
            }
        )
        for old in steps[: max(0, len(steps) - self.keep)]:
            if f"{self.prefix}/{old}" != keep_key:
                self.store.delete_prefix(f"{self.prefix}/{old}/")

    def clear(self) -> int:
        """Remove every checkpoint of the run (after its adapter is packaged)."""
        return self.store.delete_prefix(f"{self.prefix}/")
