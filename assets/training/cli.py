"""Train a LoRA adapter from the command line, on one device or data-parallel on several under
`torchrun` / `accelerate launch` (the launcher sets RANK / WORLD_SIZE / LOCAL_RANK; ranks
synchronise their LoRA gradients through torch.distributed: NCCL on GPUs, Gloo on CPUs).

    python -m assets.training.cli --model DIR --train train.jsonl --validation val.jsonl \\
        --out adapter/ --params '{"max_steps": 100, "rank": 16}'
    torchrun --nproc-per-node 8 -m assets.training.cli ...          # 8 GPUs, one node
    accelerate launch --multi_gpu --num_processes 8 -m assets.training.cli ...

Input files hold one example per line with a `messages` list (the dataset builder's JSONL
export). The result (losses, validation loss, tokens/s) is printed as JSON by rank 0 and
written to `--result` when given."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from assets.training.trainer import TrainParams, distributed, train_lora


def read_messages(path: Path | None) -> list[list[dict[str, str]]]:
    if path is None:
        return []
    return [json.loads(line)["messages"] for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="base model folder")
    parser.add_argument("--train", type=Path, required=True, help="train split (JSONL)")
    parser.add_argument("--validation", type=Path, help="validation split (JSONL)")
    parser.add_argument("--out", type=Path, required=True, help="where the adapter goes")
    parser.add_argument("--params", default="{}", help="TrainParams fields as JSON")
    parser.add_argument("--result", type=Path, help="write the result JSON here (rank 0)")
    args = parser.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch
        import torch.distributed as dist

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    values = json.loads(args.params)
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    params = TrainParams(**values)
    result = train_lora(
        args.model, read_messages(args.train), read_messages(args.validation), args.out, params
    )
    rank, world = distributed()
    summary = {
        "rank": rank,
        "world_size": world,
        "steps": result.steps,
        "losses": result.losses,
        "validation_loss": result.validation_loss,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "weights_sha256": result.weights_sha256,
        "params": {**asdict(params), "target_modules": list(params.target_modules)},
    }
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if args.result:
        target = (
            args.result if rank == 0 else args.result.with_name(f"{args.result.name}.rank{rank}")
        )
        target.write_text(json.dumps(summary))
    if rank == 0:
        print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
