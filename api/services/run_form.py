"""The training form: AdapterConfig's fields as form fields (defaults, limits and descriptions
read from the pydantic model, not retyped), a submitted form turned into typed hyperparameters
(each bad field named), and the memory preflight's estimate for a base model and
hyperparameters before the run starts (the same estimator and verdict the worker applies)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError

from assets.training.config import AdapterConfig
from assets.training.trainer import ALL_LINEAR

# Chosen elsewhere on the form (the approved models' select), not a free field.
SEPARATE_FIELDS = ("base_model",)
_TRUE = frozenset({"on", "true", "1", "yes"})


@dataclass(frozen=True)
class FormField:
    """One hyperparameter as the form shows it."""

    name: str
    kind: str  # int | float | bool | choice | multi
    default: Any  # None: unset (the project's setting or the run's own choice applies)
    description: str
    minimum: float | None = None  # inclusive bounds only: an exclusive one is told, not enforced
    maximum: float | None = None
    limits: str = ""  # the bounds in words
    choices: tuple[str, ...] = ()

    @property
    def step(self) -> str:
        return "1" if self.kind == "int" else "any"


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, str]:
    low: Any = None
    high: Any = None
    words = []
    for item in metadata:
        if isinstance(item, Ge):
            low = item.ge
            words.append(f"at least {item.ge}")
        elif isinstance(item, Gt):
            words.append(f"more than {item.gt}")
        elif isinstance(item, Le):
            high = item.le
            words.append(
                f"at most {item.le:,}" if isinstance(item.le, int) else f"at most {item.le}"
            )
        elif isinstance(item, Lt):
            words.append(f"less than {item.lt}")
    return (
        float(low) if low is not None else None,
        float(high) if high is not None else None,
        ", ".join(words),
    )


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    base = annotation
    if get_origin(annotation) in (Union, UnionType):  # an optional field: its type
        args = [a for a in get_args(annotation) if a is not type(None)]
        base = args[0] if len(args) == 1 else annotation
    if get_origin(base) is Literal:
        return "choice", tuple(str(a) for a in get_args(base))
    if get_origin(base) is list:
        return "multi", ALL_LINEAR
    if base is bool:
        return "bool", ()
    if base is int:
        return "int", ()
    if base is float:
        return "float", ()
    return "text", ()


def hyperparameter_fields() -> list[FormField]:
    """Every AdapterConfig field but those the form asks for apart, in the model's order."""
    fields = []
    for name, info in AdapterConfig.model_fields.items():
        if name in SEPARATE_FIELDS:
            continue
        kind, choices = _kind(info.annotation)
        default = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
        low, high, limits = _bounds(list(info.metadata))
        fields.append(
            FormField(name, kind, default, info.description or "", low, high, limits, choices)
        )
    return fields


def _parse_one(field: FormField, raw: Any) -> Any:
    """The form's text as the field's type; ValueError says what is wrong."""
    if field.kind == "bool":
        return str(raw).strip().lower() in _TRUE
    if field.kind == "multi":
        values = raw if isinstance(raw, list) else [raw]
        return [str(v) for v in values if str(v).strip()]
    text = str(raw).strip()
    if field.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if field.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    return text


def parse_hyperparameters(form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's hyperparameters, typed and checked against AdapterConfig: (values, errors by
    field). A blank field is unset; an unticked box is false (browsers send only ticked ones);
    values equal to the default are left out, so the run's config lists what was chosen."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in hyperparameter_fields():
        raw = form.get(field.name)
        if field.kind != "bool" and (raw is None or (isinstance(raw, str) and not raw.strip())):
            if field.kind == "multi":
                values[field.name] = []  # no layer ticked: the model says what is allowed
            continue
        try:
            values[field.name] = _parse_one(field, raw if raw is not None else "")
        except ValueError as exc:
            errors[field.name] = f"{field.name} {exc}"
    if errors:
        return {}, errors
    try:
        config = AdapterConfig(**values)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "hyperparameters"
            errors.setdefault(name, f"{name}: {error['msg']}")
        return {}, errors
    defaults = {f.name: f.default for f in hyperparameter_fields()}
    typed = {name: getattr(config, name) for name in values}
    return {k: v for k, v in typed.items() if v != defaults.get(k)}, errors


# --- the memory preflight, before the run ---------------------------------------------------


@dataclass(frozen=True)
class PreflightEstimate:
    """What the worker's memory preflight will say, estimated now: `fits` is None when no
    estimate could be made (`verdict` says why)."""

    model: str
    device: str | None
    fits: bool | None
    verdict: str
    total_gib: float | None = None
    available_gib: float | None = None
    breakdown: dict[str, float] | None = None
    tokens_per_step: int | None = None


def model_config_json(
    source_kind: str, source: str, model_id: str, store: Any, settings: Any
) -> dict[str, Any] | None:
    """A base model's config.json without loading or downloading its weights: the packaged
    model's converted folder, a local folder, the object store's copy, or a hub model's cached
    copy. None when it is nowhere here yet."""
    folder: Path | None = None
    if source_kind == "package":
        from resources.chat_engine import resolve_base_model

        folder = resolve_base_model()[1]
    elif source_kind == "local":
        folder = Path(source).expanduser()
    elif source_kind == "object_store":
        cached = settings.model_cache / model_id.replace("/", "--") / "config.json"
        if cached.is_file():
            return json.loads(cached.read_text())
        if store is None:
            return None
        try:
            return json.loads(store.get_bytes(source.rstrip("/") + "/config.json"))
        except Exception:  # missing or unreadable: say so rather than fail the form
            return None
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            source, "config.json", cache_dir=str(settings.model_cache / "hub")
        )
        return json.loads(Path(found).read_text()) if isinstance(found, str) else None
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def estimate_preflight(
    model_id: str,
    config_json: dict[str, Any] | None,
    hyperparameters: dict[str, Any],
    default_steps: int,
) -> PreflightEstimate:
    """The worker's preflight (assets/training/assets.py) for these hyperparameters: the same
    device choice, estimator and verdict, with the memory available on this machine now."""
    from assets.training.memory import GIB, ModelShape, available_memory, estimate_memory
    from assets.training.memory import preflight as verdict_of
    from assets.training.trainer import TrainingRefused, resolve_device

    if config_json is None:
        return PreflightEstimate(
            model_id,
            None,
            None,
            f"no estimate yet: {model_id}'s config.json is not on this server (its first run "
            "fetches the model; the worker's preflight still checks memory before training)",
        )
    config = AdapterConfig(**hyperparameters)
    params = config.params(default_steps)
    try:
        device = resolve_device(params)
    except TrainingRefused as exc:
        return PreflightEstimate(model_id, None, False, f"the run would be refused: {exc}")
    shape = ModelShape.from_config(SimpleNamespace(**config_json))
    estimate = estimate_memory(shape, params, device)
    available = available_memory(device)
    fits, verdict = verdict_of(estimate, available, device)
    return PreflightEstimate(
        model_id,
        device,
        fits,
        verdict,
        round(estimate.total / GIB, 2),
        round(available / GIB, 2),
        estimate.breakdown(),
        estimate.tokens,
    )
