"""Data-parallel training through `torchrun` (two CPU ranks, Gloo): the ranks split the
seeded stream, average their LoRA gradients, and finish with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.train_worker import messages

ROOT = Path(__file__).resolve().parents[2]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    return path


def test_torchrun_two_ranks_train_one_adapter(small_model_dir: Path, tmp_path: Path) -> None:
    train = _jsonl(tmp_path / "train.jsonl", messages(20))
    val = _jsonl(tmp_path / "validation.jsonl", messages(5))
    params = {"max_steps": 6, "learning_rate": 3e-3, "batch_tokens": 160, "dropout": 0.0}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "assets.training.cli",
            "--model",
            str(small_model_dir),
            "--train",
            str(train),
            "--validation",
            str(val),
            "--out",
            str(tmp_path / "adapter"),
            "--params",
            json.dumps(params),
            "--result",
            str(tmp_path / "result.json"),
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = json.loads((tmp_path / "result.json").read_text())
    rank1 = json.loads((tmp_path / "result.json.rank1").read_text())
    assert rank0["world_size"] == rank1["world_size"] == 2
    # different data on each rank, yet the same weights: the gradients were averaged
    assert rank0["weights_sha256"] == rank1["weights_sha256"]
    assert rank0["losses"] == rank1["losses"]  # the logged loss is the all-reduced mean
    assert rank0["losses"][-1] < rank0["losses"][0]
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "adapter.rank1").exists()
