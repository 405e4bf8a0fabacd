"""Export a PEFT LoRA adapter to a GGUF LoRA file that llama.cpp loads on top of the base GGUF.

The layout is the one llama.cpp's own `convert_lora_to_gguf.py` writes:

- metadata `general.type = "adapter"`, `adapter.type = "lora"`, `adapter.lora.alpha`, and
  `general.architecture` equal to the base model's (llama.cpp refuses a mismatch);
- per adapted linear layer two f32 tensors named after the base GGUF tensor,
  `<base>.lora_a` (PEFT's A as stored, torch shape [r, in], ggml ne [in, r]) and
  `<base>.lora_b` (PEFT's B, torch shape [out, r], ggml ne [r, out]);
- Hugging Face names mapped to GGUF names with gguf-py's tensor name map
  (`model.layers.N.self_attn.q_proj` -> `blk.N.attn_q`, ...);
- for the llama architecture, `convert_hf_to_gguf.py` permutes the rows of q_proj and k_proj
  (`LlamaModel.permute`, the rotary-embedding layout of GGML). The adapter's delta B @ A must
  be permuted the same way: the permutation acts on output rows, so only B's rows move, A is
  untouched (`LoraTorchTensor.reshape`/`permute` in `convert_lora_to_gguf.py` do exactly this).

llama.cpp scales each adapted layer by `alpha / rank` with `rank = lora_b.ne[0]`, PEFT by
`lora_alpha / r` (or `/ sqrt(r)` with rsLoRA, and per-module values with `rank_pattern` /
`alpha_pattern`). Where the two differ the ratio is folded into B, so the exported delta is
exactly PEFT's.

Adapters that llama.cpp cannot reproduce are refused with a ValueError: DoRA, trained extra
modules (`modules_to_save`), LoRA biases, adapters on embeddings / lm_head or non-llama
modules, initialisations that rewrite the base weights (PiSSA, OLoRA, CorDA, LoftQ), aLoRA.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# The linear layers of a llama block that llama.cpp applies a LoRA to (its `build_lora_mm`).
SUPPORTED_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SUPPORTED_ARCHS = ("llama",)

_KEY = re.compile(
    r"^base_model\.model\.(?P<module>model\.layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\."
    r"(?P<proj>[a-z_]+))\.lora_(?P<ab>[AB])\.weight$"
)
# Initialisations after which the adapter only works on a rewritten base model.
_BASE_REWRITING_INITS = ("pissa", "olora", "corda", "loftq")


class _BaseInfo:
    """What the export needs of the base model: architecture, heads, layers, tensor shapes."""

    def __init__(
        self,
        arch: str,
        n_head: int,
        n_head_kv: int,
        n_layer: int,
        shapes: dict[str, tuple[int, int]] | None,
    ) -> None:
        self.arch = arch
        self.n_head = n_head
        self.n_head_kv = n_head_kv
        self.n_layer = n_layer
        self.shapes = shapes  # GGUF tensor name -> (in_features, out_features); None: unknown


def _gguf_scalar(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, list):  # per-layer arrays (some models): all equal for llama
        if len(set(value)) != 1:
            raise ValueError(f"{key} varies per layer; not supported")
        value = value[0]
    return value


def _base_from_gguf(path: Path) -> _BaseInfo:
    import gguf

    reader = gguf.GGUFReader(path)
    arch = str(_gguf_scalar(reader, "general.architecture"))
    n_head = _gguf_scalar(reader, f"{arch}.attention.head_count")
    n_head_kv = _gguf_scalar(reader, f"{arch}.attention.head_count_kv") or n_head
    n_layer = _gguf_scalar(reader, f"{arch}.block_count")
    if n_head is None or n_layer is None:
        raise ValueError(f"{path} lacks {arch}.attention.head_count or {arch}.block_count")
    shapes = {
        t.name: (int(t.shape[0]), int(t.shape[1])) for t in reader.tensors if len(t.shape) == 2
    }
    return _BaseInfo(arch, int(n_head), int(n_head_kv), int(n_layer), shapes)


def _base_from_hf(folder: Path) -> _BaseInfo:
    config = json.loads((folder / "config.json").read_text())
    model_type = config.get("model_type")
    n_head = config["num_attention_heads"]
    return _BaseInfo(
        str(model_type),
        int(n_head),
        int(config.get("num_key_value_heads") or n_head),
        int(config["num_hidden_layers"]),
        None,
    )


def _check_config(config: dict[str, Any]) -> None:
    """Refuse adapter kinds whose effect a GGUF LoRA cannot express."""
    problems: list[str] = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')!r}, only LORA is supported")
    if config.get("use_dora"):
        problems.append("DoRA (use_dora) is not supported by llama.cpp")
    if config.get("modules_to_save"):
        problems.append(
            f"modules_to_save={config['modules_to_save']!r}: fully trained extra modules "
            "cannot be expressed as a GGUF LoRA"
        )
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("LoRA bias terms are not supported")
    if config.get("fan_in_fan_out"):
        problems.append("fan_in_fan_out (Conv1D layers) is not supported")
    if config.get("target_parameters"):
        problems.append("target_parameters (LoRA on raw parameters) is not supported")
    if config.get("layer_replication"):
        problems.append("layer_replication is not supported")
    if config.get("trainable_token_indices"):
        problems.append("trainable_token_indices is not supported")
    if config.get("alora_invocation_tokens") or config.get("invocation_string"):
        problems.append("activated LoRA (aLoRA) is not supported")
    init = config.get("init_lora_weights")
    if isinstance(init, str) and init.lower().startswith(_BASE_REWRITING_INITS):
        problems.append(
            f"init_lora_weights={init!r} rewrites the base weights; the adapter does not "
            "apply to the unmodified base GGUF"
        )
    if config.get("loftq_config"):
        problems.append("LoftQ rewrites the base weights; not supported")
    if problems:
        raise ValueError("cannot export this adapter to GGUF: " + "; ".join(problems))


def _pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches the module's name or suffix."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _permute_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute applied to B's rows (the output dimension)."""
    out, rank = b.shape
    return b.reshape(n_head, 2, out // n_head // 2, rank).swapaxes(1, 2).reshape(out, rank)


def _load_tensors(peft_dir: Path) -> dict[str, np.ndarray]:
    weights = peft_dir / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(weights), device="cpu")
    elif (peft_dir / "adapter_model.bin").is_file():
        import torch

        tensors = torch.load(peft_dir / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"{peft_dir} holds no adapter_model.safetensors or adapter_model.bin")
    return {name: t.float().numpy() for name, t in tensors.items()}


def export_gguf_lora(peft_dir: Path, out_path: Path, base_gguf: Path | None = None) -> dict:
    """Write `peft_dir`'s LoRA adapter as a GGUF LoRA file at `out_path`.

    `base_gguf`: the base model GGUF the adapter will be served on; its metadata gives the
    architecture and head counts (for the q/k permutation) and its tensor shapes are checked
    against the adapter's. Without it the base model's config.json is read from the adapter's
    `base_model_name_or_path` (a local Hugging Face folder).

    Returns {"path", "sha256", "size", "tensors", "alpha", "rank"}.
    """
    import gguf

    peft_dir = Path(peft_dir)
    out_path = Path(out_path)
    config_file = peft_dir / "adapter_config.json"
    if not config_file.is_file():
        raise ValueError(f"{peft_dir} is not a PEFT adapter folder (adapter_config.json missing)")
    config: dict[str, Any] = json.loads(config_file.read_text())
    _check_config(config)

    if base_gguf is not None:
        base = _base_from_gguf(Path(base_gguf))
    else:
        base_dir = Path(str(config.get("base_model_name_or_path") or ""))
        if not str(base_dir) or not (base_dir / "config.json").is_file():
            raise ValueError(
                "the base model is needed for the export: pass base_gguf, or train the adapter "
                "on a local Hugging Face folder (adapter_config.json base_model_name_or_path="
                f"{config.get('base_model_name_or_path')!r} is not one)"
            )
        base = _base_from_hf(base_dir)
    if base.arch not in SUPPORTED_ARCHS:
        raise ValueError(
            f"cannot export this adapter to GGUF: base architecture {base.arch!r} is not "
            f"supported (supported: {', '.join(SUPPORTED_ARCHS)})"
        )

    # Pair A and B per module; anything else in the file (DoRA magnitudes, biases, saved
    # modules, embeddings) is refused rather than silently dropped.
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, array in _load_tensors(peft_dir).items():
        match = _KEY.match(name)
        if match is None:
            raise ValueError(
                f"cannot export this adapter to GGUF: tensor {name!r} is not a LoRA A/B "
                f"weight of a supported module ({', '.join(SUPPORTED_MODULES)})"
            )
        if match["proj"] not in SUPPORTED_MODULES:
            raise ValueError(
                f"cannot export this adapter to GGUF: target module {match['proj']!r} "
                f"({name}) is not one of {', '.join(SUPPORTED_MODULES)}"
            )
        if int(match["layer"]) >= base.n_layer:
            raise ValueError(f"{name}: layer {match['layer']} >= the base's {base.n_layer} layers")
        pairs.setdefault(match["module"], {})[match["ab"]] = array
    if not pairs:
        raise ValueError(f"{peft_dir} holds no LoRA weights")

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base.n_layer)
    lora_alpha = float(config.get("lora_alpha", 8))
    use_rslora = bool(config.get("use_rslora"))
    ranks: set[int] = set()

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".gguf-lora-", suffix=".gguf", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, base.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora_alpha)
        writer.add_name(peft_dir.name)
        n_tensors = 0
        for module in sorted(pairs, key=_module_order):
            ab = pairs[module]
            if "A" not in ab or "B" not in ab:
                raise ValueError(f"{module}: lora_A or lora_B missing")
            a, b = ab["A"], ab["B"]
            rank = a.shape[0]
            if a.ndim != 2 or b.ndim != 2 or b.shape[1] != rank:
                raise ValueError(f"{module}: lora_A {a.shape} and lora_B {b.shape} do not pair")
            ranks.add(rank)
            gguf_name = name_map.get_name(module)
            if gguf_name is None:
                raise ValueError(f"{module}: no GGUF tensor name for it")
            gguf_name += ".weight"
            if base.shapes is not None:
                expected = base.shapes.get(gguf_name)
                if expected is None:
                    raise ValueError(f"{module}: the base GGUF has no tensor {gguf_name}")
                if expected != (a.shape[1], b.shape[0]):
                    raise ValueError(
                        f"{module}: adapter shape (in={a.shape[1]}, out={b.shape[0]}) does not "
                        f"match the base tensor {gguf_name} {expected}: wrong base model?"
                    )
            # PEFT's scale for this module vs. the one llama.cpp will apply; fold the ratio.
            alpha_m = float(_pattern_value(config.get("alpha_pattern") or {}, module, lora_alpha))
            peft_scale = alpha_m / (math.sqrt(rank) if use_rslora else rank)
            cpp_scale = lora_alpha / rank if lora_alpha else 1.0
            if not math.isclose(peft_scale, cpp_scale, rel_tol=1e-6):
                b = b * np.float32(peft_scale / cpp_scale)
            proj = module.rsplit(".", 1)[1]
            if proj == "q_proj":
                b = _permute_rows(b, base.n_head)
            elif proj == "k_proj":
                b = _permute_rows(b, base.n_head_kv)
            writer.add_tensor(gguf_name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(gguf_name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
            n_tensors += 2
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)

    digest = hashlib.sha256()
    with open(out_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {
        "path": str(out_path),
        "sha256": digest.hexdigest(),
        "size": out_path.stat().st_size,
        "tensors": n_tensors,
        "alpha": lora_alpha,
        "rank": sorted(ranks)[0] if len(ranks) == 1 else sorted(ranks),
    }


def _module_order(module: str) -> tuple[int, str]:
    layer = int(module.split(".")[2])
    return layer, module
