"""The transformers runtime: one base model in memory, many tenants' LoRA adapters, concurrent
requests batched together (LoRAX-style).

Requests queue up; one scheduler thread takes everything waiting (up to `spec.max_batch`) and
runs it as one `generate` pass. A pass may mix adapters: PEFT's mixed-batch inference applies
each row's own adapter (`adapter_names`, `__base__` for the bare base model), so tenant A's
request and tenant B's share a pass without sharing weights. Rows stop at their own end of
sequence or token limit; the pass ends when every row has. Streamed requests receive their
text as it is decoded, row by row.

Adapters stay loaded (least recently used first out beyond `MAX_LOADED_ADAPTERS`).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resources.chat_engine import ChatEngine, Generation, get_engine
from resources.runtimes import AdapterRef, RuntimeSpec, RuntimeUnavailable

MAX_LOADED_ADAPTERS = 32
BASE = "__base__"
_END = object()


@dataclass
class _Request:
    prompt_ids: list[int]
    adapter: AdapterRef | None
    max_new_tokens: int
    result: Future = field(default_factory=Future)
    pieces: queue.Queue | None = None  # streamed requests: text pieces, then _END
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of the decoded text already streamed
    done: bool = False


class _RowStreamer:
    """`generate`'s streamer for a whole batch: hands each row's new token to its request."""

    def __init__(self, runtime: TransformersRuntime, batch: list[_Request]) -> None:
        self.runtime = runtime
        self.batch = batch
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        ids = value.reshape(len(self.batch), -1)[:, -1].tolist()
        for request, token in zip(self.batch, ids, strict=True):
            if not request.done:
                self.runtime._advance(request, int(token))

    def end(self) -> None:
        for request in self.batch:
            if not request.done:
                self.runtime._finish(request)


class _AllDone:
    """Stopping criterion: a row is finished once its request is (end of sequence or its own
    token limit); `generate` stops when all rows are. The flags live on the model's device and
    change only when a row finishes (no new tensor, no host round trip, per step)."""

    def __init__(self, batch: list[_Request]) -> None:
        self.batch = batch
        self.flags: Any = None
        self.count = -1

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = sum(r.done for r in self.batch)
        if done != self.count:
            self.flags = torch.tensor([r.done for r in self.batch], device=input_ids.device)
            self.count = done
        return self.flags


class TransformersRuntime:
    kind = "transformers"

    def __init__(self, spec: RuntimeSpec, base_model_path: Path) -> None:
        self.spec = spec
        self.engine: ChatEngine = get_engine(base_model_path, spec.device)
        self.tokenizer = self.engine.tokenizer
        self.eos_ids = self._eos_ids()
        self._adapters: OrderedDict[str, str] = OrderedDict()  # peft name -> folder
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._submitting = threading.Lock()
        self.passes = 0  # generation passes run, and the largest batch one held (for tests, bench)
        self.largest_batch = 0
        self._worker = threading.Thread(
            target=self._serve, name="transformers-runtime", daemon=True
        )
        self._worker.start()

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        config_eos = getattr(self.engine.base.generation_config, "eos_token_id", None)
        if isinstance(config_eos, int):
            ids.add(config_eos)
        elif config_eos:
            ids.update(config_eos)
        return {i for i in ids if i is not None}

    # --- the interface ------------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[dict[str, str]]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> list[Generation]:
        prepared = [self._request(c, adapter, max_new_tokens) for c in conversations]
        with self._submitting:  # one caller's list lands in the queue at once: one pass
            for r in prepared:
                self._queue.put(r)
        return [r.result.result() for r in prepared]

    def stream(
        self,
        conversation: list[dict[str, str]],
        adapter: AdapterRef | None = None,
        max_new_tokens: int = 96,
    ) -> Iterator[str]:
        request = self._request(conversation, adapter, max_new_tokens, stream=True)
        assert request.pieces is not None
        with self._submitting:
            self._queue.put(request)
        while True:
            piece = request.pieces.get()
            if piece is _END:
                break
            yield piece
        request.result.result()  # raises what the pass raised

    # --- requests -----------------------------------------------------------------------------
    def _request(
        self,
        conversation: list[dict[str, str]],
        adapter: AdapterRef | None,
        max_new_tokens: int,
        stream: bool = False,
    ) -> _Request:
        if adapter is not None and adapter.peft_dir is None:
            raise RuntimeUnavailable(
                f"adapter {adapter.name} has no PEFT folder, which the transformers runtime reads"
            )
        prompt = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        request = _Request(list(ids), adapter, max(1, max_new_tokens))
        if stream:
            request.pieces = queue.Queue()
        return request

    def _text(self, request: _Request) -> str:
        return str(self.tokenizer.decode(request.tokens, skip_special_tokens=True))

    def _advance(self, request: _Request, token: int) -> None:
        if token in self.eos_ids:
            self._finish(request)
            return
        request.tokens.append(token)
        if request.pieces is not None:
            # Trailing whitespace waits for the next piece (the final text is stripped), and a
            # partial UTF-8 character for its other bytes.
            text = self._text(request).strip()
            if not text.endswith("\ufffd") and len(text) > request.emitted:
                request.pieces.put(text[request.emitted :])
                request.emitted = len(text)
        if len(request.tokens) >= request.max_new_tokens:
            self._finish(request)

    def _finish(self, request: _Request) -> None:
        request.done = True
        text = self._text(request).strip()
        if request.pieces is not None:
            if len(text) > request.emitted:
                request.pieces.put(text[request.emitted :])
            request.pieces.put(_END)
        request.result.set_result(Generation(text, len(request.prompt_ids), len(request.tokens)))

    def _fail(self, batch: list[_Request], exc: BaseException) -> None:
        for request in batch:
            if not request.result.done():
                request.result.set_exception(exc)
            if request.pieces is not None:
                request.pieces.put(_END)

    # --- the scheduler ------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            with self._submitting:  # a list being submitted is taken whole
                while len(batch) < self.spec.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            self.passes += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._run(batch)
            except BaseException as exc:  # every waiting caller gets the error
                self._fail(batch, exc)

    def _adapter_name(self, adapter: AdapterRef | None) -> str:
        if adapter is None:
            return BASE
        assert adapter.peft_dir is not None
        folder = str(adapter.peft_dir.resolve())
        return "a" + hashlib.sha256(folder.encode()).hexdigest()[:16]

    def _load(self, names: dict[str, AdapterRef]) -> None:
        """Adapters of this pass loaded (and marked recently used); the least recently used
        beyond the limit unloaded, never one this pass needs."""
        from peft import PeftModel

        engine = self.engine
        for name, adapter in names.items():
            if name in self._adapters:
                self._adapters.move_to_end(name)
                continue
            if name in engine._adapters:  # loaded through ChatEngine already
                self._adapters[name] = engine._adapters[name]
                continue
            folder = str(adapter.peft_dir)
            if engine.model is engine.base:
                engine.model = PeftModel.from_pretrained(engine.base, folder, adapter_name=name)
            else:
                engine.model.load_adapter(folder, adapter_name=name)
            engine.model.eval()
            engine._adapters[name] = str(adapter.peft_dir)
            self._adapters[name] = str(adapter.peft_dir)
        while len(self._adapters) > MAX_LOADED_ADAPTERS:
            victim = next(n for n in self._adapters if n not in names)
            self._adapters.pop(victim)
            engine._adapters.pop(victim, None)
            engine.model.delete_adapter(victim)

    def _run(self, batch: list[_Request]) -> None:
        import torch
        from transformers import StoppingCriteriaList

        engine = self.engine
        pad = self.tokenizer.pad_token_id
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        names = [self._adapter_name(r.adapter) for r in batch]
        kwargs: dict[str, Any] = {}
        with engine._lock:
            wanted = {n: r.adapter for n, r in zip(names, batch, strict=True) if r.adapter}
            self._load(wanted)  # type: ignore[arg-type]
            context: Any = contextlib.nullcontext()
            if engine.model is not engine.base:
                if len(set(names)) > 1:  # tenants' adapters mixed in one pass: per-row LoRA
                    kwargs["adapter_names"] = names
                elif names[0] == BASE:
                    context = engine.model.disable_adapter()
                else:  # one adapter for the whole pass: PEFT's plain (faster) path
                    engine.model.set_adapter(names[0])
            with context, torch.inference_mode():
                engine.model.generate(
                    input_ids=input_ids.to(engine.device),
                    attention_mask=mask.to(engine.device),
                    max_new_tokens=max(r.max_new_tokens for r in batch),
                    do_sample=False,
                    pad_token_id=pad,
                    streamer=_RowStreamer(self, batch),
                    stopping_criteria=StoppingCriteriaList([_AllDone(batch)]),
                    **kwargs,
                )
        for r in batch:
            if not r.done:
                self._finish(r)
