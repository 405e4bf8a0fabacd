"""Checkpoints in the object store: a training process killed with SIGKILL resumes from its
latest checkpoint when run again, losing at most one interval, and ends exactly where an
uninterrupted run ends (same seed, same data order, same RNG)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resources.object_store import LocalObjectStore, ProjectStore

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 12, 3


def _worker(model_dir: Path, store: Path, result: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.train_worker",
            str(model_dir),
            str(store),
            str(result),
            str(STEPS),
            str(EVERY),
            str(pause),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_killed_run_resumes_from_its_latest_checkpoint(
    small_model_dir: Path, tmp_path: Path
) -> None:
    # the reference: the same training, never interrupted
    ref = _worker(small_model_dir, tmp_path / "ref-store", tmp_path / "ref" / "result.json", 0.0)
    (tmp_path / "ref").mkdir()
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out
    reference = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert reference["resumed_from_step"] is None
    assert len(reference["losses"]) == STEPS

    # the victim: killed with SIGKILL once its second checkpoint is complete
    store_root = tmp_path / "store"
    (tmp_path / "run").mkdir()
    store = ProjectStore(LocalObjectStore(store_root), "acme", "handbook")
    pointer = "checkpoints/run-1/latest.json"
    victim = _worker(small_model_dir, store_root, tmp_path / "run" / "result.json", 0.4)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if store.exists(pointer) and store.get_json(pointer)["step"] >= 2 * EVERY:
            break
        assert victim.poll() is None, victim.stdout.read() if victim.stdout else ""
        time.sleep(0.05)
    else:
        pytest.fail("no second checkpoint within 300 s")
    os.kill(victim.pid, signal.SIGKILL)
    printed, _ = victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    killed_after = max(
        int(line.split()[1]) for line in printed.splitlines() if line.startswith("step ")
    )
    assert killed_after < STEPS
    assert not (tmp_path / "run" / "result.json").exists()

    # retried: it picks up the latest complete checkpoint and finishes
    retry = _worker(small_model_dir, store_root, tmp_path / "run" / "result.json", 0.0)
    out, _ = retry.communicate(timeout=300)
    assert retry.returncode == 0, out
    resumed = json.loads((tmp_path / "run" / "result.json").read_text())
    start = resumed["resumed_from_step"]
    assert start is not None and start % EVERY == 0
    assert f"resumed: resumed from the checkpoint at step {start}" in out
    assert 0 <= killed_after - start <= EVERY, (killed_after, start)  # at most one interval lost
    first_step_run = min(
        int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")
    )
    assert first_step_run == start + 1
    # and it ends exactly where the uninterrupted run ends
    assert resumed["losses"] == pytest.approx(reference["losses"], rel=1e-4)
    # validation ran at every epoch boundary, before and after the kill alike
    assert len(reference["validation_losses"]) >= 2
    assert [v["step"] for v in resumed["validation_losses"]] == [
        v["step"] for v in reference["validation_losses"]
    ]
    assert [v["loss"] for v in resumed["validation_losses"]] == pytest.approx(
        [v["loss"] for v in reference["validation_losses"]], rel=1e-4
    )
    # only the newest checkpoints are kept
    kept = {k.split("/")[2] for k in store.list_keys("checkpoints/run-1/") if "/step-" in k}
    assert len(kept) <= 2
