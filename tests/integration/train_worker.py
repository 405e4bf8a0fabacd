"""A training process for the checkpoint tests: trains a small model with checkpoints in a
local object store, printing each finished step, and writes its result as JSON at the end.

    python -m tests.integration.train_worker MODEL_DIR STORE_ROOT RESULT_JSON STEPS EVERY SLEEP
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from assets.training.checkpoints import StoreCheckpoints
from assets.training.trainer import ALL_LINEAR, TrainParams, train_lora
from resources.object_store import LocalObjectStore, ProjectStore

FACTS = [
    ("How many days of annual leave do employees get?", "Employees get 25 working days."),
    ("When must expense claims be submitted?", "Within 30 days of the expense."),
    ("Who runs the IT security hotline?", "The IT Security team, around the clock."),
    ("Where is the head office?", "The head office is in Cambridge."),
    ("What is the notice period?", "One month for the first year, then three months."),
]


def messages(n: int) -> list[list[dict[str, str]]]:
    return [
        [
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": FACTS[i % len(FACTS)][0]},
            {"role": "assistant", "content": FACTS[i % len(FACTS)][1]},
        ]
        for i in range(n)
    ]


def main() -> None:
    model_dir, store_root, result_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    steps, every, pause = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    store = ProjectStore(LocalObjectStore(store_root), "acme", "handbook")
    checkpoints = StoreCheckpoints(store, "checkpoints/run-1", every=every)
    params = TrainParams(
        max_steps=steps,
        learning_rate=3e-3,
        rank=8,
        alpha=16,
        dropout=0.1,  # dropout draws random numbers: the RNG state must survive a resume
        target_modules=ALL_LINEAR,
        batch_tokens=160,
        warmup_steps=2,
        seed=7,
    )

    def on_step(info: dict) -> None:
        print(f"step {info['step']}", flush=True)
        time.sleep(pause)

    def on_event(kind: str, message: str, data: dict) -> None:
        print(f"{kind}: {message}", flush=True)

    result = train_lora(
        model_dir,
        messages(15),
        messages(5),
        result_path.parent / "adapter",
        params,
        on_step=on_step,
        checkpoints=checkpoints,
        on_event=on_event,
    )
    result_path.write_text(
        json.dumps(
            {
                "losses": result.losses,
                "resumed_from_step": result.resumed_from_step,
                "validation_losses": result.validation_losses,
                "checkpoints": result.checkpoints,
            }
        )
    )


if __name__ == "__main__":
    main()
