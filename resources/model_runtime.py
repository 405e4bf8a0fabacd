"""The Dagster resource over the base model (resources/chat_engine.py holds the engine itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.chat_engine import (  # noqa: F401  (re-exported: the engine's long-standing home)
    _GGUF_PACKAGE,
    DEFAULT_BASE_MODEL_ID,
    ChatEngine,
    Generation,
    ModelNotAvailable,
    get_engine,
    packaged_gguf,
    resolve_base_model,
)


class ModelRuntime(dg.ConfigurableResource):
    """Loads the approved base model (and PEFT adapters) and generates chat completions."""

    base_model: str | None = Field(
        default=None,
        description="Hugging Face model folder; unset: PRIVATUNE_BASE_MODEL or the packaged SmolLM2.",
    )
    device: str = Field(default="cpu", description="torch device for inference.")

    def base_model_ref(self) -> tuple[str, Path]:
        return resolve_base_model(self.base_model)

    def engine(self) -> ChatEngine:
        return get_engine(self.base_model_ref()[1], self.device)

    def serving(self) -> Any:
        """The transformers serving runtime on this base model (batches concurrent requests,
        mixes adapters in one pass): what evaluation generates with."""
        from resources.runtimes import RuntimeSpec, get_runtime

        return get_runtime(
            RuntimeSpec(kind="transformers", device=self.device), self.base_model_ref()[1]
        )
