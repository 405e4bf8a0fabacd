"""A project's settings: one typed definition with every default and limit, read by the API
(requests are checked against it, the OpenAPI document shows it) and by the assets.

The database keeps only the fields a tenant set (so a default can change later); the
effective settings are `ProjectSettings.load(stored)`. `ProjectSettingsChange`, the body of
`POST /v1/projects` and `PATCH /v1/projects/{p}`, is generated from `ProjectSettings`, and
`validate_settings_change` merges one over the stored fields.

Constants that assets modules use as well (default texts, thresholds, the accepted values of a
setting) are defined here and imported there, so each has one source. This module imports no
assets module at import time (prompt.py, review.py and others import it); the rules that need
one (custom recognisers, entity types, promotion metrics) import it when they run."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from msgspec import UNSET, Meta, UnsetType

from resources.settings import get_settings

# --- defaults and limits ------------------------------------------------------------------------

DEFAULT_SYSTEM_PROMPT = (
    "You are the assistant of an organisation. Answer with facts from the numbered context "
    "passages only. If the context does not contain the answer, say so."
)
DEFAULT_REFUSAL = (
    "I can't answer that from this project's documents. Please contact the document owner."
)
DEFAULT_ESCALATION = (
    "I can't help with that request here. Please contact the responsible team (HR, IT or your "
    "manager) directly."
)
MAX_TEXT_CHARS = 2000
DEFAULT_REFUSAL_SHARE = 0.1
MAX_REFUSAL_SHARE = 0.5
MIN_CHUNK_TOKENS = 32
MAX_CHUNK_TOKENS = 4096
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32
DEFAULT_SPLIT_SEED = 13
MAX_SPLIT_SEED = 2**32 - 1
DEFAULT_AUTO_ACCEPT_THRESHOLD = 0.6
DEFAULT_REVIEW_SAMPLE_RATE = 0.05
MAX_TRAIN_STEPS = 100_000
DEFAULT_NEAR_DUP_THRESHOLD = 0.8
DEFAULT_QUALITY_THRESHOLD = 0.4
DEFAULT_RECOGNIZER_SCORE = 0.85
MAX_RECOGNIZERS = 100
MAX_ALLOW_TERMS = 10_000
MAX_ALLOW_TERM_CHARS = 200
DEFAULT_COMPARE_FIRST_WITH_BASE = True

# The accepted values of a setting: the Literal is the type, the tuple what code iterates.
Generator = Literal["deterministic", "model"]
DEFAULT_GENERATORS: tuple[Generator, ...] = ("deterministic",)
GeneratorProvider = Literal["local", "openai", "ollama"]
PROVIDERS: tuple[str, ...] = get_args(GeneratorProvider)
DEFAULT_PROVIDER: GeneratorProvider = "local"
ReviewPolicy = Literal["auto", "wait"]
REVIEW_POLICIES: tuple[str, ...] = get_args(ReviewPolicy)
DEFAULT_REVIEW_POLICY: ReviewPolicy = "auto"
PiiPolicy = Literal["redact", "block", "allow"]
PII_POLICIES: tuple[str, ...] = get_args(PiiPolicy)
DEFAULT_PII_POLICY: PiiPolicy = "redact"
ResidualMode = Literal["review", "fail"]
RESIDUAL_MODES: tuple[str, ...] = get_args(ResidualMode)
DEFAULT_RESIDUAL_MODE: ResidualMode = "review"
RuntimeKind = Literal["transformers", "llama_cpp", "ollama", "openai"]
RUNTIME_KINDS: tuple[str, ...] = get_args(RuntimeKind)
DEFAULT_RUNTIME_KIND: RuntimeKind = "transformers"

# Patterns in the OpenAPI document, and what they mean in an error message.
# Python's whitespace (str.isspace, `\s` of `re`) spelled out: `\s` of the JSON Schema (ECMA)
# regexes differs (\x1c-\x1f and \x85 are not in it, \ufeff is), so `\S` would not say there
# what is checked here.
SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
URL_PATTERN = rf"^https?://[^{SPACE}]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENTITY_TYPE_PATTERN = r"^[A-Z][A-Z0-9_]{1,40}$"
NOT_BLANK_PATTERN = rf"[^{SPACE}]"
_PATTERN_WORDS = {
    URL_PATTERN: "an http(s) URL",
    ENV_NAME_PATTERN: "an environment variable name (letters, digits and _)",
    ENTITY_TYPE_PATTERN: "2-41 characters of A-Z, 0-9 and _, starting with a letter "
    "(e.g. EMPLOYEE_ID)",
    NOT_BLANK_PATTERN: "not blank",
}


# Litestar 2.25's OpenAPI generator drops a bound of 0 (it tests the bound's truth); the schema
# extra states it again.
FROM_ZERO: dict[str, Any] = {"extra": {"minimum": 0}}
ABOVE_ZERO: dict[str, Any] = {"extra": {"exclusive_minimum": 0}}
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK_PATTERN)]
Share = Annotated[float, Meta(ge=0.0, le=1.0, extra_json_schema=FROM_ZERO)]
Url = Annotated[str, Meta(max_length=2000, pattern=URL_PATTERN)]
EnvName = Annotated[str, Meta(max_length=100, pattern=ENV_NAME_PATTERN)]
ModelName = Annotated[str, Meta(min_length=1, max_length=200, pattern=NOT_BLANK_PATTERN)]
TimeoutSeconds = Annotated[float, Meta(gt=0, le=3600, extra_json_schema=ABOVE_ZERO)]


# --- what a setting's value is wrong about ------------------------------------------------------


class InvalidSetting(ValueError):
    """A setting that cannot be used: `setting` is its top-level name (e.g. `runtime`), the
    message names the field (e.g. `settings.runtime.max_batch`) and says what it must be."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message


def _invalid(setting: str, problem: str) -> InvalidSetting:
    """InvalidSetting for `problem`, which starts with the field's path below `settings`."""
    return InvalidSetting(setting, f"settings.{problem}")


# --- the nested settings ------------------------------------------------------------------------


class PiiRecognizer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A tenant-defined regex recogniser (matched case-insensitively, as Presidio does); a
    `context` word near a match raises its score."""

    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            pattern=NOT_BLANK_PATTERN,
            description="What the recogniser is called in findings.",
        ),
    ]
    entity_type: Annotated[
        str,
        Meta(pattern=ENTITY_TYPE_PATTERN, description="Entity type it finds (e.g. EMPLOYEE_ID)."),
    ]
    pattern: Annotated[
        Text, Meta(description="Regular expression (Python `regex` syntax); must not match ''.")
    ]
    score: Annotated[
        float,
        Meta(
            gt=0.0,
            le=1.0,
            extra_json_schema=ABOVE_ZERO,
            description="Confidence of a match without context.",
        ),
    ] = DEFAULT_RECOGNIZER_SCORE
    context: Annotated[
        tuple[Annotated[str, Meta(min_length=1, max_length=100, pattern=NOT_BLANK_PATTERN)], ...],
        Meta(max_length=50, description="Words that, near a match, raise its score."),
    ] = ()


class GeneratorModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The model-based generator's teacher: the base model in-process (`local`), or any
    OpenAI-compatible server (`openai`, `ollama`). The API key is read from the environment
    variable `api_key_env` at run time; it is never stored. Unset fields take the generator's
    defaults (assets/dataset/model_generator.py `ModelGeneratorConfig`)."""

    provider: Annotated[
        GeneratorProvider,
        Meta(description="local (the base model in-process), openai or ollama."),
    ] = DEFAULT_PROVIDER
    model: (
        Annotated[
            ModelName,
            Meta(description="Model name (openai, ollama: required; local: a model folder)."),
        ]
        | None
    ) = None
    base_url: (
        Annotated[
            Url,
            Meta(description="The server's /v1 address (openai: required; ollama: a default)."),
        ]
        | None
    ) = None
    api_key_env: (
        Annotated[EnvName, Meta(description="Environment variable holding the API key.")] | None
    ) = None
    max_chunks: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=100_000,
                description="Chunks sent to the model, spread over documents (unset: all).",
            ),
        ]
        | None
    ) = None
    max_new_tokens: (
        Annotated[
            int,
            Meta(ge=8, le=4096, description="Longest reply per chunk, in tokens."),
        ]
        | None
    ) = None
    temperature: (
        Annotated[
            float,
            Meta(
                ge=0.0,
                le=2.0,
                extra_json_schema=FROM_ZERO,
                description="Sampling temperature (remote teachers; local decodes greedily).",
            ),
        ]
        | None
    ) = None
    timeout_s: (
        Annotated[TimeoutSeconds, Meta(description="Timeout of one request, in seconds.")] | None
    ) = None

    def check(self) -> None:
        """Raise InvalidSetting when the provider lacks what it needs."""
        if self.provider == "openai" and not (self.base_url and self.model):
            raise _invalid(
                "generator_model", "generator_model: provider openai needs base_url and model"
            )
        if self.provider == "ollama" and not self.model:
            raise _invalid("generator_model", "generator_model: provider ollama needs model")


class Promotion(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The promotion gate: how much worse than the active deployment a candidate may be per
    metric, its latency budget, and whether the first candidate must also hold the margins
    against the base model."""

    margins: (
        Annotated[
            dict[str, Share],
            Meta(
                description="Metric -> largest allowed drop (0-1); metrics not given keep their "
                "default margin (assets/evaluation/report.py DEFAULT_MARGINS)."
            ),
        ]
        | None
    ) = None
    latency_budget_p95_s: (
        Annotated[
            float,
            Meta(
                gt=0.0,
                le=3600.0,
                extra_json_schema=ABOVE_ZERO,
                description="Highest p95 latency (one request at a time), seconds; unset: none.",
            ),
        ]
        | None
    ) = None
    compare_first_with_base: (
        Annotated[
            bool,
            Meta(
                description="Hold the first candidate to the margins against its base model "
                f"(unset: {str(DEFAULT_COMPARE_FIRST_WITH_BASE).lower()})."
            ),
        ]
        | None
    ) = None

    def first_with_base(self) -> bool:
        """compare_first_with_base, with its default."""
        if self.compare_first_with_base is None:
            return DEFAULT_COMPARE_FIRST_WITH_BASE
        return self.compare_first_with_base

    def check(self) -> None:
        """Raise InvalidSetting for a margin of a metric the gate does not measure."""
        if not self.margins:
            return  # without importing the report module (jinja2): most projects set none
        from assets.evaluation.report import DEFAULT_MARGINS

        for metric in self.margins:
            if metric not in DEFAULT_MARGINS:
                raise _invalid(
                    "promotion",
                    f"promotion.margins: unknown metric {metric!r}; one of "
                    f"{', '.join(DEFAULT_MARGINS)}",
                )


class ServingRuntime(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How the project's next deployments are served (resources/runtimes); unset fields take
    the runtime's defaults (resources/runtimes `RuntimeSpec`)."""

    kind: Annotated[RuntimeKind, Meta(description="transformers, llama_cpp, ollama or openai.")] = (
        DEFAULT_RUNTIME_KIND
    )
    base_url: (
        Annotated[Url, Meta(description="The upstream's /v1 address (ollama, openai: required).")]
        | None
    ) = None
    model: (
        Annotated[ModelName, Meta(description="The name the upstream serves the adapter as.")]
        | None
    ) = None
    api_key_env: (
        Annotated[EnvName, Meta(description="Environment variable holding the upstream's key.")]
        | None
    ) = None
    timeout_s: (
        Annotated[TimeoutSeconds, Meta(description="Timeout of one upstream request, seconds.")]
        | None
    ) = None
    n_threads: (
        Annotated[
            int,
            Meta(ge=1, le=1024, description="llama_cpp: threads (unset: all cores)."),
        ]
        | None
    ) = None
    n_ctx: (
        Annotated[
            int,
            Meta(ge=128, le=1_048_576, description="llama_cpp: context size in tokens."),
        ]
        | None
    ) = None
    max_batch: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=64,
                description="transformers: concurrent requests one generation pass may batch.",
            ),
        ]
        | None
    ) = None

    def check(self) -> None:
        """Raise InvalidSetting when the kind lacks what it needs."""
        if self.kind in ("ollama", "openai") and not self.base_url:
            raise _invalid(
                "runtime", f"runtime: kind {self.kind} needs base_url (the upstream's /v1 address)"
            )


# --- the settings -------------------------------------------------------------------------------


class ProjectSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A project's effective settings: what the tenant set, defaults for the rest."""

    system_prompt: Annotated[
        Text, Meta(description="System prompt of every training example and of serving.")
    ] = DEFAULT_SYSTEM_PROMPT
    refusal_text: Annotated[
        Text,
        Meta(
            description="Answer of out-of-scope examples, and of questions retrieval cannot answer."
        ),
    ] = DEFAULT_REFUSAL
    escalation_text: Annotated[
        Text,
        Meta(
            description="Answer to requests for personal data, credentials or actions beyond "
            "the assistant's remit."
        ),
    ] = DEFAULT_ESCALATION
    refusal_share: Annotated[
        float,
        Meta(
            ge=0.0,
            le=MAX_REFUSAL_SHARE,
            extra_json_schema=FROM_ZERO,
            description="Share of refusal and escalation examples in train and validation.",
        ),
    ] = DEFAULT_REFUSAL_SHARE
    generators: Annotated[
        tuple[Generator, ...],
        Meta(min_length=1, description="Example generators: deterministic and/or model."),
    ] = DEFAULT_GENERATORS
    generator_model: (
        Annotated[
            GeneratorModel,
            Meta(description="The model generator's teacher (unset: the base model, in-process)."),
        ]
        | None
    ) = None
    chunk_tokens: Annotated[
        int,
        Meta(
            ge=MIN_CHUNK_TOKENS,
            le=MAX_CHUNK_TOKENS,
            description="Chunk size in tokens of the base model's tokenizer.",
        ),
    ] = DEFAULT_CHUNK_TOKENS
    chunk_overlap_tokens: Annotated[
        int,
        Meta(
            ge=0,
            le=MAX_CHUNK_TOKENS // 2,
            extra_json_schema=FROM_ZERO,
            description="Trailing blocks repeated at the start of a section's next chunk, in "
            "tokens; at most half of chunk_tokens.",
        ),
    ] = DEFAULT_OVERLAP_TOKENS
    split_seed: Annotated[
        int,
        Meta(
            ge=0,
            le=MAX_SPLIT_SEED,
            extra_json_schema=FROM_ZERO,
            description="Seed of the document-level train/validation/gold split (assignments "
            "are frozen once made).",
        ),
    ] = DEFAULT_SPLIT_SEED
    review_policy: Annotated[
        ReviewPolicy,
        Meta(
            description="auto: training uses approved examples and every other one scoring at "
            "least auto_accept_threshold; wait: splits fails while the review queue is not empty."
        ),
    ] = DEFAULT_REVIEW_POLICY
    auto_accept_threshold: Annotated[
        Share, Meta(description="Examples scoring below it go to the review queue.")
    ] = DEFAULT_AUTO_ACCEPT_THRESHOLD
    review_sample_rate: Annotated[
        Share, Meta(description="Share of the other examples sampled into the review queue.")
    ] = DEFAULT_REVIEW_SAMPLE_RATE
    train_steps: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_TRAIN_STEPS,
                description="LoRA optimisation steps (unset: PRIVATUNE_TRAIN_STEPS).",
            ),
        ]
        | None
    ) = None
    base_model: (
        Annotated[
            ModelName,
            Meta(description="Approved base model id (unset: the registry's default)."),
        ]
        | None
    ) = None
    pii_policy: Annotated[
        PiiPolicy,
        Meta(
            description="Personal data found in documents: redact it, block the document, or "
            "allow it."
        ),
    ] = DEFAULT_PII_POLICY
    pii_recognizers: Annotated[
        tuple[PiiRecognizer, ...],
        Meta(max_length=MAX_RECOGNIZERS, description="The project's own regex recognisers."),
    ] = ()
    pii_allow_terms: Annotated[
        tuple[
            Annotated[
                str, Meta(min_length=1, max_length=MAX_ALLOW_TERM_CHARS, pattern=NOT_BLANK_PATTERN)
            ],
            ...,
        ],
        Meta(
            max_length=MAX_ALLOW_TERMS,
            description="Terms that are never personal data here (product names, public "
            "authors); a finding wholly covered by one (whole words, any case) is dropped.",
        ),
    ] = ()
    pii_entities: (
        Annotated[
            tuple[str, ...],
            Meta(
                description="Entity types to screen: built-in ones and the types of "
                "pii_recognizers (unset: all built-in types)."
            ),
        ]
        | None
    ) = None
    pii_residual: Annotated[
        ResidualMode,
        Meta(
            description="Personal data found again after redaction: review sends the examples "
            "concerned to the review queue; fail fails the run."
        ),
    ] = DEFAULT_RESIDUAL_MODE
    near_dup_threshold: Annotated[
        float,
        Meta(
            gt=0.0,
            le=1.0,
            extra_json_schema=ABOVE_ZERO,
            description="Jaccard similarity (word 3-shingles) at which a document is a near "
            "duplicate of one the project holds.",
        ),
    ] = DEFAULT_NEAR_DUP_THRESHOLD
    quality_threshold: Annotated[
        Share,
        Meta(description="Documents whose quality score is lower are kept out of the dataset."),
    ] = DEFAULT_QUALITY_THRESHOLD
    promotion: Annotated[
        Promotion, Meta(description="The promotion gate's margins and latency budget.")
    ] = Promotion()
    retrieval_min_confidence: (
        Annotated[
            float,
            Meta(
                ge=0.0,
                le=1.0,
                extra_json_schema=FROM_ZERO,
                description="Questions answerable with less confidence get refusal_text (unset: "
                "assets/retrieval/answering.py ANSWERABLE_THRESHOLD).",
            ),
        ]
        | None
    ) = None
    runtime: (
        Annotated[
            ServingRuntime,
            Meta(description="How the next deployments are served (unset: transformers)."),
        ]
        | None
    ) = None

    @classmethod
    def load(cls, stored: Mapping[str, Any] | None) -> ProjectSettings:
        """The effective settings for the stored ones (null: unset); InvalidSetting naming a
        stored value that does not validate (any more)."""
        values = {k: v for k, v in (stored or {}).items() if v is not None}
        settings = _decode(values, cls)
        settings.check()
        return settings

    def check(self) -> None:
        """The rules between fields, and those that need an assets module; InvalidSetting
        naming the first setting that breaks one."""
        if self.chunk_overlap_tokens > self.chunk_tokens // 2:
            raise _invalid(
                "chunk_overlap_tokens",
                f"chunk_overlap_tokens must be at most half of chunk_tokens "
                f"({self.chunk_tokens // 2} for chunk_tokens {self.chunk_tokens})",
            )
        if self.generator_model is not None:
            self.generator_model.check()
        self.custom_recognizers()
        self.allow_terms()
        self.entities()
        self.promotion.check()
        if self.runtime is not None:
            self.runtime.check()

    def custom_recognizers(self) -> list[Any]:
        """pii_recognizers compiled (assets.pii.recognizers.CustomRecognizer)."""
        from assets.pii.recognizers import CustomRecognizer

        custom = []
        for index, recognizer in enumerate(self.pii_recognizers):
            try:
                custom.append(CustomRecognizer.from_dict(msgspec.to_builtins(recognizer)))
            except ValueError as exc:
                raise _invalid("pii_recognizers", f"pii_recognizers[{index}]: {exc}") from exc
        return custom

    def allow_terms(self) -> tuple[str, ...]:
        """pii_allow_terms with whitespace collapsed and repeats (any case) dropped."""
        from assets.pii.recognizers import validate_allow_terms

        try:
            return validate_allow_terms(list(self.pii_allow_terms), "pii_allow_terms")
        except ValueError as exc:
            raise _invalid("pii_allow_terms", str(exc)) from exc

    def entities(self) -> tuple[str, ...] | None:
        """pii_entities without repeats, each a known type (None: the defaults)."""
        from assets.pii.recognizers import validate_entities

        value = None if self.pii_entities is None else list(self.pii_entities)
        try:
            return validate_entities(value, self.custom_recognizers(), "pii_entities")
        except ValueError as exc:
            raise _invalid("pii_entities", str(exc)) from exc

    def effective_train_steps(self) -> int:
        """train_steps, or the deployment's PRIVATUNE_TRAIN_STEPS when the project sets none."""
        return self.train_steps if self.train_steps is not None else get_settings().train_steps


# --- msgspec's errors in the words of the settings ----------------------------------------------

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_STEP = re.compile(r"\.?(?P<name>[A-Za-z_]\w*)|\[(?P<index>\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")


def _decode(values: Mapping[str, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.convert(values, kind)
    except msgspec.ValidationError as exc:
        error = str(exc)
        at = _AT.search(error)
        raise decode_error(
            at["path"].lstrip(".") if at else "", error[: at.start()] if at else error
        ) from None


def decode_error(path: str, problem: str) -> InvalidSetting:
    """msgspec's `problem` with a value at `path` below `settings` (e.g. `runtime.max_batch`,
    `pii_recognizers[0].score`), as InvalidSetting saying what the value must be."""
    steps = list(_steps(path))
    where = f"settings.{path}" if path else "settings"
    setting = next((s for s in steps if not s.startswith("[")), "")
    node = _node(steps)
    if unknown := _UNKNOWN.match(problem):
        name = unknown["name"]
        known = ", ".join(f.encode_name for f in getattr(node, "fields", ()))
        if not path:
            return _invalid(name, f"{name} is not a project setting; the settings are {known}")
        return _invalid(setting, f"{path}.{name} is not a field of {path}; its fields are {known}")
    if missing := _MISSING.match(problem):
        return InvalidSetting(setting, f"{where} needs {missing['name']}")
    if node is None:
        return InvalidSetting(setting, f"{where}: {problem}")
    if steps and steps[-1] == "[...]":  # a value of a mapping: msgspec does not say which
        return InvalidSetting(
            setting, f"{where.removesuffix('[...]')} values must be {_describe(node, True)}"
        )
    return InvalidSetting(setting, f"{where} must be {_describe(node)}")


def _steps(path: str) -> Iterator[str]:
    for match in _STEP.finditer(path):
        yield match["name"] or f"[{match['index']}]"


def _struct_info(kind: type[Any]) -> Any:
    return msgspec.inspect.type_info(kind)


def _node(steps: list[str]) -> Any:
    """The msgspec type of the value `steps` lead to from ProjectSettings (None: unknown)."""
    node: Any = _struct_info(ProjectSettings)
    for step in steps:
        node = _unwrap(node)
        if step.startswith("["):
            node = getattr(node, "value_type" if step == "[...]" else "item_type", None)
        else:
            fields = {f.encode_name: f.type for f in getattr(node, "fields", ())}
            node = fields.get(step)
        if node is None:
            return None
    return _unwrap(node)


def _unwrap(node: Any) -> Any:
    """Past descriptions, and past null in an optional value."""
    inspect = msgspec.inspect
    while True:
        if isinstance(node, inspect.Metadata):
            node = node.type
        elif isinstance(node, inspect.UnionType):
            arms = [t for t in node.types if not isinstance(t, inspect.NoneType)]
            if len(arms) != 1:
                return node
            node = arms[0]
        else:
            return node


def _description(kind: Any) -> str:
    """The description of an annotated type (or of its non-null arm)."""
    for meta in reversed(getattr(kind, "__metadata__", ())):
        if isinstance(meta, Meta) and meta.description:
            return meta.description
    arms = [arm for arm in get_args(kind) if arm is not type(None)]
    return _description(arms[0]) if get_origin(kind) in (Union, UnionType) and arms else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _bounds(node: Any) -> str:
    low = (
        f"at least {_number(node.ge)}"
        if node.ge is not None
        else f"greater than {_number(node.gt)}"
        if node.gt is not None
        else ""
    )
    high = (
        f"at most {_number(node.le)}"
        if node.le is not None
        else f"less than {_number(node.lt)}"
        if node.lt is not None
        else ""
    )
    if node.ge is not None and node.le is not None:
        return f" between {_number(node.ge)} and {_number(node.le)}"
    return " " + " and ".join(p for p in (low, high) if p) if (low or high) else ""


def _length(node: Any, unit: str) -> str:
    low, high = node.min_length, node.max_length
    if low is not None and high is not None:
        return f" of {low} to {high} {unit}"
    if high is not None:
        return f" of at most {high} {unit}"
    if low is not None:
        return f" of at least {low} {unit}"
    return ""


def _describe(node: Any, plural: bool = False) -> str:
    """What a value of msgspec type `node` must be, in words."""
    inspect = msgspec.inspect
    node = _unwrap(node)
    if isinstance(node, inspect.IntType):
        return ("integers" if plural else "an integer") + _bounds(node)
    if isinstance(node, inspect.FloatType):
        return ("numbers" if plural else "a number") + _bounds(node)
    if isinstance(node, inspect.StrType):
        length = _length(node, "characters")
        if node.pattern in _PATTERN_WORDS and node.pattern != NOT_BLANK_PATTERN:
            return _PATTERN_WORDS[node.pattern] + length
        words = ("strings" if plural else "text") + length
        if node.pattern:
            words += f", {_PATTERN_WORDS.get(node.pattern, f'matching {node.pattern}')}"
        return words
    if isinstance(node, inspect.BoolType):
        return "true or false"
    if isinstance(node, inspect.LiteralType):
        return ("values from " if plural else "one of ") + ", ".join(map(str, node.values))
    if isinstance(node, inspect.ListType | inspect.VarTupleType | inspect.SetType):
        words = "a list of " + _describe(node.item_type, plural=True)
        if node.min_length == 1 and node.max_length is None:
            return "a non-empty " + words[2:]
        if node.max_length is not None:
            words += f", at most {node.max_length} of them"
        return words
    if isinstance(node, inspect.DictType):
        return f"an object whose values are {_describe(node.value_type, plural=True)}"
    if isinstance(node, inspect.StructType):
        names = ", ".join(f.encode_name for f in node.fields)
        return f"{'objects' if plural else 'an object'} with the fields {names}"
    if isinstance(node, inspect.UnionType):
        return " or ".join(_describe(t, plural) for t in node.types)
    return type(node).__name__


# --- the request body: a change of settings -----------------------------------------------------


def _change_type(settings: type[msgspec.Struct]) -> Any:
    """A struct with the fields of `settings`, each UNSET unless given (null: back to the
    default), with the same types and limits, and the default in its description."""
    fields = []
    for field in msgspec.structs.fields(settings):
        description = _description(field.type)
        if field.default is not None:
            description += f" Default: {msgspec.json.encode(field.default).decode()}."
        description += " null: back to the default."
        fields.append((field.name, _optional(field.type, description), UNSET))
    return msgspec.defstruct(
        "ProjectSettingsChangeFields",
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        omit_defaults=True,
        module=__name__,
    )


def _optional(kind: Any, description: str) -> Any:
    """`kind` (without its null), described, or null, or unset; the description sits on the
    value's arm, where Litestar's OpenAPI reads it with the limits (built at run time: not a
    static annotation)."""
    arms = [arm for arm in get_args(kind) if arm is not type(None)]
    value = arms[0] if get_origin(kind) in (Union, UnionType) and len(arms) == 1 else kind
    union: Any = Union
    annotated: Any = Annotated
    return union[annotated[value, Meta(description=description)], None, UnsetType]


_ProjectSettingsChangeFields: Any = _change_type(ProjectSettings)


class ProjectSettingsChange(_ProjectSettingsChangeFields):
    """Project settings to set; fields not given keep their stored value, a field given as
    null goes back to its default."""

    @classmethod
    def parse(cls, value: ProjectSettingsChange | Mapping[str, Any]) -> ProjectSettingsChange:
        """A change from its JSON form (InvalidSetting naming a bad field), or `value` itself."""
        return value if isinstance(value, cls) else _decode(value, cls)

    def given(self) -> dict[str, Any]:
        """The given fields as stored (plain JSON values; None for null)."""
        given = {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not UNSET
        }
        # Through JSON, as the database will hold them: tuples become lists.
        return dict(msgspec.json.decode(msgspec.json.encode(given)))


def validate_settings_change(
    stored: Mapping[str, Any], given: ProjectSettingsChange | Mapping[str, Any]
) -> dict[str, Any]:
    """The project's new stored settings: `given` (a change, or its JSON form) over `stored`,
    a null dropping the stored value; InvalidSetting naming the setting when the result would
    not load."""
    merged = {**stored, **ProjectSettingsChange.parse(given).given()}
    new = {name: value for name, value in merged.items() if value is not None}
    ProjectSettings.load(new)
    return new
