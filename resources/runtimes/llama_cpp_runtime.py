"""llama.cpp serving runtime: the base GGUF loaded once, tenants' GGUF LoRA adapters per request.

One `llama_cpp.Llama` (one model, one context) serves every adapter. Adapters are loaded with
llama.cpp's `llama_adapter_lora_init` against that model (a few MB each, kept in a small LRU)
and switched per request on the context with `llama_set_adapters_lora`; the base weights are
never loaded twice and an adapter switch costs no reload. When the adapter changes, the
context's KV cache is dropped (`Llama.reset`): a cached prefix computed under another adapter
must not be reused. With the same adapter, llama-cpp-python's prefix reuse stays on (the
shared system prompt is not recomputed).

Prompts are built by llama-cpp-python's chat handling (`create_chat_completion`) from the chat
template stored in the GGUF (`tokenizer.chat_template`), which is the template transformers'
`apply_chat_template` renders for the same model: the prompts are identical
(tests/integration/test_llama_cpp_runtime.py checks it). Decoding is greedy (temperature 0,
no repetition penalty), answers stripped as `ChatEngine` strips them.

llama.cpp's context is not re-entrant: one lock serialises requests (generation on CPU uses
all cores anyway). A stream holds the lock until it ends or its reader closes it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resources.chat_engine import Generation
from resources.runtimes import AdapterRef, RuntimeSpec, RuntimeUnavailable, stripped

DEFAULT_MAX_ADAPTERS = 16


def _address(pointer: Any) -> int | None:
    """The address a ctypes adapter pointer holds (None: no adapter)."""
    return None if pointer is None else ctypes.cast(pointer, ctypes.c_void_p).value


def base_gguf_for(spec: RuntimeSpec, base_model_path: Path) -> Path:
    """The GGUF file of the base model: `extra.base_gguf`, the packaged GGUF the HF folder was
    converted from, or the single *.gguf inside the base folder."""
    configured = spec.extra.get("base_gguf")
    if configured:
        path = Path(str(configured)).expanduser()
        if not path.is_file():
            raise RuntimeUnavailable(f"llama_cpp runtime: base_gguf {path} does not exist")
        return path
    source = base_model_path / "SOURCE"
    if source.is_file():
        from resources.chat_engine import _GGUF_PACKAGE, ModelNotAvailable, packaged_gguf

        package, _, name = source.read_text().strip().partition(":")
        if package == _GGUF_PACKAGE:
            try:
                gguf = packaged_gguf()
            except ModelNotAvailable as exc:
                raise RuntimeUnavailable(f"llama_cpp runtime: {exc}") from exc
            if name and gguf.name != name:
                raise RuntimeUnavailable(
                    f"llama_cpp runtime: {base_model_path} was converted from {name}, but the "
                    f"installed {_GGUF_PACKAGE} ships {gguf.name}"
                )
            return gguf
    found = sorted(base_model_path.glob("*.gguf")) if base_model_path.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise RuntimeUnavailable(
        f"llama_cpp runtime: no GGUF for the base model {base_model_path} "
        + (f"({len(found)} *.gguf files there, expected one); " if found else "; ")
        + "set runtime.extra.base_gguf to the base model's GGUF file"
    )


class LlamaCppRuntime:
    """One base GGUF in memory, GGUF LoRA adapters switched per request (see module doc)."""

    kind = "llama_cpp"

    def __init__(self, spec: RuntimeSpec, base_model_path: Path) -> None:
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeUnavailable(
                "llama_cpp runtime: llama-cpp-python is not installed (make install)"
            ) from exc
        self._lib: Any = llama_cpp
        self.spec = spec
        self.base_model_path = base_model_path
        self.base_gguf = base_gguf_for(spec, base_model_path)
        threads = spec.n_threads or os.cpu_count() or 1
        n_gpu_layers = int(spec.extra.get("n_gpu_layers", -1 if spec.device != "cpu" else 0))
        self.llm: Any = llama_cpp.Llama(
            model_path=str(self.base_gguf),
            n_ctx=spec.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=n_gpu_layers,
            verbose=False,
        )
        if "tokenizer.chat_template" not in self.llm.metadata:
            raise RuntimeUnavailable(
                f"llama_cpp runtime: {self.base_gguf} carries no tokenizer.chat_template"
            )
        # Always the model's own template (llama-cpp-python may otherwise pick a built-in
        # format whose name it guessed from the template).
        self.llm.chat_format = "chat_template.default"
        self.max_adapters = int(spec.extra.get("max_adapters", DEFAULT_MAX_ADAPTERS))
        # (resolved path, mtime_ns, size) -> llama_adapter_lora pointer, least recently used first
        self._adapters: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._active: Any = None  # the adapter pointer set on the context (None: bare base)
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    # -- adapters ---------------------------------------------------------------------------

    def _adapter_pointer(self, adapter: AdapterRef) -> Any:
        if adapter.gguf_lora is None:
            raise RuntimeUnavailable(
                f"llama_cpp runtime: adapter {adapter.name} has no GGUF LoRA file; export it "
                "with assets.deployment.gguf_lora.export_gguf_lora"
            )
        path = Path(adapter.gguf_lora).resolve()
        try:
            stat = path.stat()
        except FileNotFoundError as exc:
            raise RuntimeUnavailable(
                f"llama_cpp runtime: GGUF LoRA {path} of adapter {adapter.name} does not exist"
            ) from exc
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        pointer = self._adapters.get(key)
        if pointer is not None:
            self._adapters.move_to_end(key)
            return pointer
        pointer = self._lib.llama_adapter_lora_init(self.llm.model, str(path).encode())
        if not pointer:
            raise RuntimeUnavailable(
                f"llama_cpp runtime: llama.cpp could not load {path} for adapter "
                f"{adapter.name} (not a GGUF LoRA of this base model?)"
            )
        self._adapters[key] = pointer
        while len(self._adapters) > self.max_adapters:
            _, old = self._adapters.popitem(last=False)
            if _address(old) == _address(self._active):  # never the one just added
                self._set_context_adapter(None)
            self._lib.llama_adapter_lora_free(old)
        return pointer

    def _set_context_adapter(self, pointer: Any) -> None:
        lib = self._lib
        if pointer is None:
            lib.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            adapters = (lib.llama_adapter_lora_p_ctypes * 1)(pointer)
            scales = (ctypes.c_float * 1)(1.0)
            lib.llama_set_adapters_lora(self.llm.ctx, adapters, 1, scales)
        if _address(pointer) != _address(self._active):
            # The KV cache holds keys/values computed under the previous adapter.
            self.llm.reset()
        self._active = pointer

    def _select(self, adapter: AdapterRef | None) -> None:
        """Put `adapter` (None: bare base) on the context. Call with the lock held."""
        if self._closed:
            raise RuntimeUnavailable("llama_cpp runtime: closed")
        self._set_context_adapter(None if adapter is None else self._adapter_pointer(adapter))

    # -- chat -------------------------------------------------------------------------------

    def _complete(
        self, conversation: list[dict[str, str]], max_new_tokens: int, stream: bool
    ) -> Any:
        if max_new_tokens < 1:  # llama-cpp-python reads max_tokens <= 0 as "up to n_ctx"
            raise ValueError(f"max_new_tokens must be >= 1, not {max_new_tokens}")
        return self.llm.create_chat_completion(
            messages=conversation,
            temperature=0.0,
            top_k=1,
            repeat_penalty=1.0,
            max_tokens=max_new_tokens,
            stream=stream,
        )

    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> list[Generation]:
        results: list[Generation] = []
        with self._lock:
            self._select(adapter)
            for conversation in conversations:
                out = self._complete(conversation, max_new_tokens, stream=False)
                usage = out["usage"]
                results.append(
                    Generation(
                        text=(out["choices"][0]["message"]["content"] or "").strip(),
                        prompt_tokens=int(usage["prompt_tokens"]),
                        completion_tokens=int(usage["completion_tokens"]),
                    )
                )
        return results

    def stream(
        self,
        conversation: list[dict[str, str]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> Iterator[str]:
        """The answer as text pieces; joined they equal `generate`'s (stripped) text: leading
        whitespace is dropped and trailing whitespace held back until more text follows."""
        with self._lock:
            self._select(adapter)
            chunks = self._complete(conversation, max_new_tokens, stream=True)
            yield from stripped(c["choices"][0]["delta"].get("content") or "" for c in chunks)

    # -- diagnostics ------------------------------------------------------------------------

    def format_prompt(self, conversation: list[dict[str, str]]) -> str:
        """The prompt text `create_chat_completion` feeds the model for this conversation (the
        same formatter llama-cpp-python builds from the GGUF's chat template)."""
        from llama_cpp import llama_chat_format

        llm = self.llm
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
            stop_token_ids=[llm.token_eos()],
        )
        messages: Any = conversation
        return str(formatter(messages=messages).prompt)

    def next_token_logits(self, tokens: list[int], adapter: AdapterRef | None = None) -> Any:
        """llama.cpp's logits (numpy, [n_vocab]) for the token after `tokens`."""
        import numpy as np

        with self._lock:
            self._select(adapter)
            self.llm.reset()
            self.llm.eval(tokens)
            logits = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
            out = np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),)).copy()
            self.llm.reset()
            return out

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def close(self) -> None:
        """Free the adapters and the model (also run at interpreter exit, where
        llama-cpp-python's own finaliser can fail once ctypes is torn down)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            self._set_context_adapter(None)
            for pointer in self._adapters.values():
                self._lib.llama_adapter_lora_free(pointer)
            self._adapters.clear()
            self.llm.close()
