"""The training run's hyperparameters: the `adapter` asset's Dagster config, also what the API
validates a training request against (so both refuse the same things with the same words)."""

from typing import Any, Literal

import dagster as dg
from pydantic import Field, ValidationError, field_validator

from assets.training.trainer import ALL_LINEAR, TrainParams

TARGETS = frozenset(ALL_LINEAR)


class AdapterConfig(dg.Config):
    """LoRA / QLoRA training knobs. Unset fields fall back to the project's settings, then to
    the defaults here. `max_steps` and `epochs` are alternatives: epochs win when set."""

    base_model: str | None = Field(
        default=None, description="Approved base model id (the registry's default when unset)."
    )
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Optimisation steps (PRIVATUNE_TRAIN_STEPS by default).",
    )
    epochs: float | None = Field(
        default=None, gt=0, le=100, description="Passes over the train split (instead of steps)."
    )
    batch_size: int = Field(
        default=4, ge=1, le=1024, description="Examples per step when packing is off."
    )
    batch_tokens: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        description="Token budget of one packed step (0: batch_size x max_length / 2).",
    )
    learning_rate: float = Field(
        default=5e-4, gt=0, le=1.0, description="Peak AdamW learning rate (cosine decay)."
    )
    warmup_steps: int = Field(default=3, ge=0, le=100_000, description="Linear warm-up steps.")
    rank: int = Field(default=8, ge=1, le=512, description="LoRA rank r.")
    alpha: int = Field(default=16, ge=1, le=4096, description="LoRA alpha.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description=f"Linear layers that get LoRA weights: any of {', '.join(ALL_LINEAR)}.",
    )
    max_length: int = Field(
        default=512,
        ge=32,
        le=131_072,
        description="Longest example in tokens (sequence length); longer ones are skipped.",
    )
    packing: bool = Field(default=True, description="Padding-free packing of short examples.")
    qlora: bool = Field(
        default=False, description="4-bit NF4 base weights (bitsandbytes); needs a CUDA GPU."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory."
    )
    seed: int = Field(default=0, ge=0, description="Seed for initialisation and example order.")
    checkpoint_every: int | None = Field(
        default=None,
        ge=1,
        description="Save a resumable checkpoint every N steps (PRIVATUNE_CHECKPOINT_EVERY).",
    )
    validation_examples: int = Field(
        default=32,
        ge=0,
        le=100_000,
        description="Validation loss on at most this many examples (0: all).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where to train: auto picks CUDA when present."
    )

    @field_validator("target_modules")
    @classmethod
    def _known_targets(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - TARGETS)
        if not value or unknown:
            raise ValueError(
                f"target_modules must be a non-empty subset of {', '.join(ALL_LINEAR)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        return value

    def params(self, steps: int) -> TrainParams:
        return TrainParams(
            max_steps=self.max_steps or steps,
            epochs=self.epochs or 0,
            batch_size=self.batch_size,
            batch_tokens=self.batch_tokens,
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_steps,
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            target_modules=tuple(self.target_modules),
            max_length=self.max_length,
            packing=self.packing,
            qlora=self.qlora,
            gradient_checkpointing=self.gradient_checkpointing,
            seed=self.seed,
            device=self.device,
            validation_examples=self.validation_examples,
        )


def validate_hyperparameters(values: dict[str, Any]) -> dict[str, Any]:
    """The request's hyperparameters checked against AdapterConfig; ValueError with a message
    that names each bad field and what it must be."""
    unknown = sorted(set(values) - set(AdapterConfig.model_fields))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s): {', '.join(unknown)}; "
            f"known: {', '.join(sorted(AdapterConfig.model_fields))}"
        )
    try:
        AdapterConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None
    return values
