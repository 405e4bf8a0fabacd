"""The typed project settings (resources/project_settings.py): each limit refused naming the
field, defaults from one place, stored settings loaded, the PATCH merge, the rules between
fields; the API's decode errors in the settings' words, the limits in the OpenAPI document; the
dataset generation and the screening version unchanged for the same stored settings; a stored
setting that no longer loads fails the stage."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import msgspec
import pytest

from resources import project_settings as ps
from resources.database import Database
from resources.object_store import ObjectStoreResource
from resources.project_settings import (
    InvalidSetting,
    ProjectSettings,
    ProjectSettingsChange,
    validate_settings_change,
)

ROOT = Path(__file__).resolve().parents[2]
RECOGNIZER = {"name": "badge", "entity_type": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}


# --- limits -------------------------------------------------------------------------------------

# (stored settings, the setting named, the start of the message)
OUT_OF_LIMITS = [
    ({"chunk_tokens": 31}, "chunk_tokens", "settings.chunk_tokens must be an integer between 32"),
    ({"chunk_tokens": 4097}, "chunk_tokens", "settings.chunk_tokens must be"),
    ({"chunk_tokens": "big"}, "chunk_tokens", "settings.chunk_tokens must be an integer"),
    ({"chunk_overlap_tokens": -1}, "chunk_overlap_tokens", "settings.chunk_overlap_tokens must"),
    ({"refusal_share": 0.51}, "refusal_share", "settings.refusal_share must be a number between 0 and 0.5"),
    ({"refusal_share": -0.1}, "refusal_share", "settings.refusal_share must"),
    ({"auto_accept_threshold": 1.5}, "auto_accept_threshold", "settings.auto_accept_threshold must be a number between 0 and 1"),
    ({"review_sample_rate": -0.01}, "review_sample_rate", "settings.review_sample_rate must"),
    ({"near_dup_threshold": 0}, "near_dup_threshold", "settings.near_dup_threshold must be a number greater than 0"),
    ({"quality_threshold": 1.01}, "quality_threshold", "settings.quality_threshold must"),
    ({"retrieval_min_confidence": 2}, "retrieval_min_confidence", "settings.retrieval_min_confidence must"),
    ({"train_steps": 0}, "train_steps", "settings.train_steps must be an integer between 1 and 100000"),
    ({"train_steps": 100_001}, "train_steps", "settings.train_steps must"),
    ({"split_seed": -1}, "split_seed", "settings.split_seed must be an integer between 0"),
    ({"system_prompt": ""}, "system_prompt", "settings.system_prompt must be text of 1 to 2000 characters, not blank"),
    ({"refusal_text": "   "}, "refusal_text", "settings.refusal_text must be text"),
    ({"escalation_text": "x" * 2001}, "escalation_text", "settings.escalation_text must"),
    ({"base_model": ""}, "base_model", "settings.base_model must be text"),
    ({"generators": []}, "generators", "settings.generators must be a non-empty list"),
    ({"generators": ["magic"]}, "generators", "settings.generators[0] must be one of deterministic, model"),
    ({"review_policy": "sometimes"}, "review_policy", "settings.review_policy must be one of auto, wait"),
    ({"pii_policy": "shred"}, "pii_policy", "settings.pii_policy must be one of allow, block, redact"),
    ({"pii_residual": "ignore"}, "pii_residual", "settings.pii_residual must be one of fail, review"),
    ({"pii_allow_terms": "Acme"}, "pii_allow_terms", "settings.pii_allow_terms must be a list of strings"),
    ({"pii_allow_terms": ["Acme", ""]}, "pii_allow_terms", "settings.pii_allow_terms[1] must be text"),
    ({"pii_allow_terms": ["x" * 201]}, "pii_allow_terms", "settings.pii_allow_terms[0] must be text of 1 to 200"),
    ({"pii_entities": "PERSON"}, "pii_entities", "settings.pii_entities must be a list of strings"),
    ({"pii_recognizers": [{**RECOGNIZER, "score": 0}]}, "pii_recognizers", "settings.pii_recognizers[0].score must be a number greater than 0 and at most 1"),
    ({"pii_recognizers": [{**RECOGNIZER, "entity_type": "emp"}]}, "pii_recognizers", "settings.pii_recognizers[0].entity_type must be 2-41 characters of A-Z"),
    ({"pii_recognizers": [{"name": "badge"}]}, "pii_recognizers", "settings.pii_recognizers[0] needs entity_type"),
    ({"pii_recognizers": [RECOGNIZER] * 101}, "pii_recognizers", "settings.pii_recognizers must be a list of objects"),
    ({"generator_model": {"max_new_tokens": 4}}, "generator_model", "settings.generator_model.max_new_tokens must be an integer between 8 and 4096"),
    ({"generator_model": {"max_chunks": 0}}, "generator_model", "settings.generator_model.max_chunks must"),
    ({"generator_model": {"temperature": 3}}, "generator_model", "settings.generator_model.temperature must"),
    ({"generator_model": {"timeout_s": 0}}, "generator_model", "settings.generator_model.timeout_s must be a number greater than 0"),
    ({"generator_model": {"provider": "vllm"}}, "generator_model", "settings.generator_model.provider must be one of local, ollama, openai"),
    ({"generator_model": {"base_url": "ftp://x"}}, "generator_model", "settings.generator_model.base_url must be an http(s) URL"),
    ({"generator_model": {"api_key_env": "A-B"}}, "generator_model", "settings.generator_model.api_key_env must be an environment variable name"),
    ({"runtime": {"kind": "vllm"}}, "runtime", "settings.runtime.kind must be one of llama_cpp, ollama, openai, transformers"),
    ({"runtime": {"max_batch": 65}}, "runtime", "settings.runtime.max_batch must be an integer between 1 and 64"),
    ({"runtime": {"n_ctx": 10}}, "runtime", "settings.runtime.n_ctx must"),
    ({"runtime": {"n_threads": 0}}, "runtime", "settings.runtime.n_threads must"),
    ({"runtime": {"base_url": "localhost:11434"}}, "runtime", "settings.runtime.base_url must be an http(s) URL"),
    ({"promotion": {"margins": {"fuzzy_match": 1.5}}}, "promotion", "settings.promotion.margins values must be numbers between 0 and 1"),
    ({"promotion": {"latency_budget_p95_s": 0}}, "promotion", "settings.promotion.latency_budget_p95_s must be a number greater than 0"),
    ({"promotion": {"compare_first_with_base": "yes"}}, "promotion", "settings.promotion.compare_first_with_base must be true or false"),
    ({"promotion": 3}, "promotion", "settings.promotion must be an object with the fields margins"),
]  # fmt: skip


@pytest.mark.parametrize(("stored", "setting", "message"), OUT_OF_LIMITS)
def test_each_limit_is_refused_naming_the_setting(stored: dict, setting: str, message: str) -> None:
    with pytest.raises(InvalidSetting) as raised:
        ProjectSettings.load(stored)
    assert raised.value.setting == setting
    assert str(raised.value).startswith(message), str(raised.value)
    # A request that sets it is refused with the same words.
    with pytest.raises(InvalidSetting) as requested:
        validate_settings_change({}, stored)
    assert (requested.value.setting, str(requested.value)) == (setting, str(raised.value))


@pytest.mark.parametrize(
    "stored",
    [
        {"chunk_tokens": 32, "chunk_overlap_tokens": 16},
        {"chunk_tokens": 4096, "chunk_overlap_tokens": 2048},
        {"refusal_share": 0.0},
        {"refusal_share": 0.5},
        {"auto_accept_threshold": 1.0, "review_sample_rate": 0.0, "quality_threshold": 0.0},
        {"near_dup_threshold": 1.0, "retrieval_min_confidence": 0.0},
        {"train_steps": 1},
        {"train_steps": 100_000},
        {"split_seed": 0},
        {"system_prompt": "x" * 2000},
        {"generators": ["model", "deterministic"]},
        {"pii_recognizers": [{**RECOGNIZER, "score": 1.0, "context": ["badge"]}]},
        {"pii_allow_terms": ["x" * 200]},
        {"runtime": {"kind": "openai", "base_url": "https://h/v1", "max_batch": 64}},
        {"promotion": {"margins": {"fuzzy_match": 0.0, "refusal_accuracy": 1.0}}},
    ],
)
def test_values_at_the_limits_are_kept(stored: dict) -> None:
    assert validate_settings_change({}, stored) == stored


def test_an_unknown_setting_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidSetting) as raised:
        ProjectSettings.load({"chunk_size": 128})
    assert raised.value.setting == "chunk_size"
    assert str(raised.value).startswith("settings.chunk_size is not a project setting")
    assert "chunk_tokens" in str(raised.value)
    with pytest.raises(InvalidSetting, match=r"settings\.runtime\.gpu is not a field of runtime"):
        validate_settings_change({}, {"runtime": {"gpu": True}})
    with pytest.raises(InvalidSetting, match=r"settings\.pii_recognizers\[0\]\.flags is not"):
        validate_settings_change({}, {"pii_recognizers": [{**RECOGNIZER, "flags": "i"}]})


# --- defaults from one place --------------------------------------------------------------------


def test_defaults_are_the_constants_the_assets_use() -> None:
    from assets.dataset import pii_review, prompt, refusals
    from assets.dataset.model_generator import PROVIDERS, ModelGeneratorConfig
    from assets.dataset.split import assign_splits
    from assets.dedupe.near import DEFAULT_THRESHOLD, NearDuplicateIndex
    from assets.pii import recognizers
    from assets.retrieval.answering import Answering
    from resources.runtimes import RUNTIME_KINDS, RuntimeSpec

    defaults = ProjectSettings()
    assert defaults.system_prompt is prompt.DEFAULT_SYSTEM_PROMPT is ps.DEFAULT_SYSTEM_PROMPT
    assert defaults.refusal_text is prompt.DEFAULT_REFUSAL is ps.DEFAULT_REFUSAL
    assert defaults.escalation_text is refusals.DEFAULT_ESCALATION is ps.DEFAULT_ESCALATION
    answering = Answering(index=None)
    assert (answering.system_prompt, answering.refusal_text, answering.escalation_text) == (
        defaults.system_prompt,
        defaults.refusal_text,
        defaults.escalation_text,
    )
    assert defaults.pii_residual == pii_review.DEFAULT_RESIDUAL_MODE
    assert pii_review.RESIDUAL_MODES is ps.RESIDUAL_MODES
    assert defaults.near_dup_threshold == DEFAULT_THRESHOLD
    assert (
        inspect.signature(NearDuplicateIndex).parameters["threshold"].default == DEFAULT_THRESHOLD
    )
    assert inspect.signature(assign_splits).parameters["seed"].default == defaults.split_seed
    assert ModelGeneratorConfig().provider == ps.GeneratorModel().provider == "local"
    assert PROVIDERS is ps.PROVIDERS
    assert RuntimeSpec().kind == ps.ServingRuntime().kind and RUNTIME_KINDS is ps.RUNTIME_KINDS
    assert recognizers.MAX_ALLOW_TERMS == ps.MAX_ALLOW_TERMS
    assert recognizers.MAX_ALLOW_TERM_CHARS == ps.MAX_ALLOW_TERM_CHARS
    assert (
        recognizers.CustomRecognizer("n", "EMP", "x").score
        == ps.PiiRecognizer("n", "EMP", "x").score
    )


def test_no_second_literal_of_a_default_in_the_assets() -> None:
    """The defaults live in resources/project_settings.py only: no module defines them again,
    and no asset reads a project setting from the stored dict."""
    moved = (
        "DEFAULT_CHUNK_TOKENS|DEFAULT_OVERLAP_TOKENS|DEFAULT_REFUSAL_SHARE|DEFAULT_SPLIT_SEED"
        "|DEFAULT_QUALITY_THRESHOLD|DEFAULT_THRESHOLD|DEFAULT_SAMPLE_RATE|DEFAULT_POLICY"
        "|DEFAULT_RESIDUAL_MODE|DEFAULT_SYSTEM_PROMPT|DEFAULT_REFUSAL|DEFAULT_ESCALATION"
        "|POLICIES|RESIDUAL_MODES|PROVIDERS|RUNTIME_KINDS|MAX_ALLOW_TERMS|MAX_ALLOW_TERM_CHARS"
    )
    defined = re.compile(rf"^(?:{moved})\s*=", re.M)
    dict_read = re.compile(r"settings(?: or \{\}\))?\.get\(\s*\"(\w+)\"")
    names = {f.name for f in msgspec.structs.fields(ProjectSettings)}
    offenders = []
    for folder in ("assets", "resources"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "project_settings.py":
                continue
            text = path.read_text()
            offenders += [f"{path}: {m.group(0)}" for m in defined.finditer(text)]
            offenders += [
                f"{path}: settings.get({m.group(1)!r})"
                for m in dict_read.finditer(text)
                if m.group(1) in names
            ]
    assert offenders == []


def test_the_request_type_is_generated_from_the_settings() -> None:
    """Same fields, same limits and descriptions, every one optional (unset unless given)."""
    settings = msgspec.inspect.type_info(ProjectSettings).fields
    change = msgspec.inspect.type_info(ProjectSettingsChange).fields
    assert [f.name for f in change] == [f.name for f in settings]
    for mine, theirs in zip(change, settings, strict=True):
        assert not mine.required
        assert _arm(mine.type) == _arm(theirs.type), mine.name
    assert ProjectSettingsChange().given() == {}
    with pytest.raises(InvalidSetting, match="settings.colour is not a project setting"):
        ProjectSettingsChange.parse({"colour": "blue"})


def _arm(node: Any) -> Any:
    """The value's type without null, descriptions or the default stated in them."""
    while True:
        if isinstance(node, msgspec.inspect.Metadata):
            node = node.type
        elif isinstance(node, msgspec.inspect.UnionType):
            arms = [t for t in node.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(arms) != 1:
                return node
            node = arms[0]
        else:
            return node


# --- load ---------------------------------------------------------------------------------------


def test_load_gives_the_stored_settings_over_the_defaults() -> None:
    assert ProjectSettings.load({}) == ProjectSettings.load(None) == ProjectSettings()
    loaded = ProjectSettings.load(
        {
            "chunk_tokens": 128,
            "generators": ["deterministic", "model"],
            "refusal_share": 0,  # an integer where a number is expected: a float
            "system_prompt": None,  # null: unset
            "pii_recognizers": [RECOGNIZER],
            "promotion": {"margins": {"fuzzy_match": 0.1}, "compare_first_with_base": False},
            "runtime": {"kind": "llama_cpp", "n_threads": 2},
        }
    )
    assert loaded.chunk_tokens == 128 and loaded.chunk_overlap_tokens == ps.DEFAULT_OVERLAP_TOKENS
    assert loaded.generators == ("deterministic", "model")
    assert loaded.refusal_share == 0.0 and isinstance(loaded.refusal_share, float)
    assert loaded.system_prompt == ps.DEFAULT_SYSTEM_PROMPT
    assert loaded.pii_recognizers == (ps.PiiRecognizer(**RECOGNIZER),)
    assert loaded.pii_recognizers[0].score == ps.DEFAULT_RECOGNIZER_SCORE
    assert loaded.promotion.margins == {"fuzzy_match": 0.1}
    assert loaded.promotion.first_with_base() is False
    assert ProjectSettings().promotion.first_with_base() is ps.DEFAULT_COMPARE_FIRST_WITH_BASE
    assert loaded.runtime == ps.ServingRuntime(kind="llama_cpp", n_threads=2)
    with pytest.raises(AttributeError):
        loaded.chunk_tokens = 64  # type: ignore[misc]


def test_train_steps_default_is_the_deployment_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from resources.settings import get_settings

    monkeypatch.setenv("PRIVATUNE_TRAIN_STEPS", "77")
    get_settings.cache_clear()
    assert ProjectSettings().train_steps is None
    assert ProjectSettings().effective_train_steps() == 77
    assert ProjectSettings.load({"train_steps": 5}).effective_train_steps() == 5


# --- the PATCH merge ----------------------------------------------------------------------------


def test_a_change_is_merged_over_the_stored_fields_only() -> None:
    stored = {
        "chunk_tokens": 512,
        "runtime": {"kind": "llama_cpp"},
        "generator_model": {"provider": "ollama", "model": "llama3.2", "max_chunks": 20},
    }
    before = json.loads(json.dumps(stored))
    new = validate_settings_change(
        stored,
        {
            "chunk_overlap_tokens": 200,  # at most half of the stored chunk_tokens
            "runtime": None,  # null: back to the default
            "generator_model": {"provider": "local"},  # a nested setting is replaced whole
            "pii_allow_terms": ["Acme Cloud"],
            "split_seed": ps.DEFAULT_SPLIT_SEED,  # a default set explicitly is kept
        },
    )
    assert new == {
        "chunk_tokens": 512,
        "chunk_overlap_tokens": 200,
        "generator_model": {},  # the provider given is the default: omitted, as before
        "pii_allow_terms": ["Acme Cloud"],  # JSON values: lists, not tuples
        "split_seed": ps.DEFAULT_SPLIT_SEED,
    }
    assert stored == before
    assert validate_settings_change(stored, {}) == stored


def test_a_change_is_checked_with_the_stored_settings() -> None:
    with pytest.raises(InvalidSetting) as raised:
        validate_settings_change({"chunk_tokens": 64}, {"chunk_overlap_tokens": 40})
    assert raised.value.setting == "chunk_overlap_tokens"
    assert "at most half of chunk_tokens (32 for chunk_tokens 64)" in str(raised.value)
    # A stored value that no longer loads is named, so the same PATCH can fix it.
    with pytest.raises(InvalidSetting, match="settings.chunk_tokens must"):
        validate_settings_change({"chunk_tokens": 8}, {"refusal_share": 0.2})
    assert validate_settings_change({"chunk_tokens": 8}, {"chunk_tokens": 64}) == {
        "chunk_tokens": 64
    }


def test_a_change_from_the_request_body() -> None:
    change = msgspec.json.decode(
        b'{"chunk_tokens": 128, "runtime": null, "generators": ["model"]}',
        type=ProjectSettingsChange,
    )
    assert change.given() == {"chunk_tokens": 128, "runtime": None, "generators": ["model"]}
    assert validate_settings_change({"runtime": {"kind": "llama_cpp"}}, change) == {
        "chunk_tokens": 128,
        "generators": ["model"],
    }
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int` >= 32 - at `\$.chunk"):
        msgspec.json.decode(b'{"chunk_tokens": 8}', type=ProjectSettingsChange)


def test_the_controller_answers_invalid_settings_and_returns_the_given_fields() -> None:
    from api.errors import BadRequest
    from api.services.projects import validate_runtime, validate_settings

    assert validate_settings({"chunk_tokens": 128, "runtime": None}) == {
        "chunk_tokens": 128,
        "runtime": None,
    }
    with pytest.raises(BadRequest) as raised:
        validate_settings({"chunk_overlap_tokens": 40}, stored={"chunk_tokens": 64})
    assert raised.value.code == "invalid_settings"
    assert raised.value.details == {"setting": "chunk_overlap_tokens"}
    with pytest.raises(BadRequest, match="kind ollama needs base_url") as runtime:
        validate_runtime(ps.ServingRuntime(kind="ollama"))
    assert runtime.value.code == "invalid_settings"


# --- rules between fields -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "setting", "message"),
    [
        ({"chunk_tokens": 128, "chunk_overlap_tokens": 65}, "chunk_overlap_tokens", "at most half"),
        ({"chunk_overlap_tokens": 129}, "chunk_overlap_tokens", "(128 for chunk_tokens 256)"),
        ({"generator_model": {"provider": "openai", "model": "m"}}, "generator_model", "provider openai needs base_url and model"),
        ({"generator_model": {"provider": "openai", "base_url": "http://h/v1"}}, "generator_model", "provider openai needs"),
        ({"generator_model": {"provider": "ollama"}}, "generator_model", "provider ollama needs model"),
        ({"runtime": {"kind": "openai"}}, "runtime", "settings.runtime: kind openai needs base_url"),
        ({"runtime": {"kind": "ollama", "model": "m"}}, "runtime", "kind ollama needs base_url"),
        ({"pii_recognizers": [{**RECOGNIZER, "pattern": "EMP-("}]}, "pii_recognizers", "settings.pii_recognizers[0]: custom recognizer 'badge': invalid regex"),
        ({"pii_recognizers": [{**RECOGNIZER, "pattern": "x*"}]}, "pii_recognizers", "matches the empty string"),
        ({"pii_entities": []}, "pii_entities", "settings.pii_entities is empty"),
        ({"pii_entities": ["person"]}, "pii_entities", r"settings.pii_entities[0] is not an entity type"),
        ({"pii_entities": ["SHOE_SIZE"]}, "pii_entities", "unknown entity type 'SHOE_SIZE'"),
        ({"pii_entities": ["EMPLOYEE_ID"]}, "pii_entities", "unknown entity type 'EMPLOYEE_ID'"),
        ({"promotion": {"margins": {"accuracy": 0.1}}}, "promotion", "settings.promotion.margins: unknown metric 'accuracy'; one of answer_contains"),
    ],
)  # fmt: skip
def test_rules_between_fields(stored: dict, setting: str, message: str) -> None:
    with pytest.raises(InvalidSetting) as raised:
        ProjectSettings.load(stored)
    assert raised.value.setting == setting
    assert message in str(raised.value)


def test_rules_between_fields_accept_what_they_should() -> None:
    loaded = ProjectSettings.load(
        {
            "generator_model": {"provider": "ollama", "model": "llama3.2"},
            "runtime": {"kind": "ollama", "base_url": "http://127.0.0.1:11434/v1"},
            # a custom recogniser's type may be screened for
            "pii_recognizers": [RECOGNIZER],
            "pii_entities": ["PERSON", "EMPLOYEE_ID", "PERSON"],
            "pii_allow_terms": ["Acme  Cloud", "acme cloud", "Linus"],
        }
    )
    assert loaded.entities() == ("PERSON", "EMPLOYEE_ID")
    assert loaded.allow_terms() == ("Acme Cloud", "Linus")
    assert [r.entity_type for r in loaded.custom_recognizers()] == ["EMPLOYEE_ID"]


# --- the same dataset generation and screening version as before the typed settings -------------

STORED = [
    {},
    {
        "escalation_text": "Ask HR.",
        "refusal_share": 0.2,
        "generators": ["deterministic", "model"],
        "generator_model": {"provider": "ollama", "model": "llama3.2", "max_chunks": 20},
        "review_policy": "wait",
        "auto_accept_threshold": 0.7,
    },
    {
        "chunk_tokens": 128,
        "chunk_overlap_tokens": 0,
        "split_seed": 0,
        "refusal_share": 0.0,
        "review_sample_rate": 0.0,
        "pii_residual": "fail",
        "system_prompt": "Be brief.",
        "refusal_text": "No.",
        "generator_model": {
            "provider": "openai",
            "model": "m",
            "base_url": "http://h/v1",
            "api_key_env": "KEY",
            "temperature": 0.3,
            "max_new_tokens": 64,
            "timeout_s": 10.0,
        },
    },
    {
        "pii_policy": "block",
        "pii_recognizers": [RECOGNIZER],
        "pii_allow_terms": ["Acme Cloud", "linus  torvalds"],
        "pii_entities": ["PERSON", "EMPLOYEE_ID"],
    },
    {
        "pii_recognizers": [
            {"name": "b", "entity_type": "BADGE", "pattern": r"B-\d+", "score": 0.5, "context": ["badge"]}
        ],
        "pii_policy": "allow",
    },
]  # fmt: skip


def _dataset_settings_before(settings: dict) -> dict[str, Any]:
    """assets/dataset/assets.py `dataset_settings` as it read the stored dict before."""
    from assets.dataset.model_generator import ModelGeneratorConfig

    def given(name: str, default: Any) -> Any:
        return settings[name] if settings.get(name) is not None else default

    return {
        "system_prompt": settings.get("system_prompt")
        or "You are the assistant of an organisation. Answer with facts from the numbered "
        "context passages only. If the context does not contain the answer, say so.",
        "refusal_text": settings.get("refusal_text")
        or "I can't answer that from this project's documents. Please contact the document owner.",
        "escalation_text": settings.get("escalation_text")
        or "I can't help with that request here. Please contact the responsible team (HR, IT "
        "or your manager) directly.",
        "refusal_share": float(given("refusal_share", 0.1)),
        "generators": list(settings.get("generators") or ["deterministic"]),
        "generator_model": ModelGeneratorConfig.from_settings(
            settings.get("generator_model")
        ).describe(),
        "chunk_tokens": int(settings.get("chunk_tokens") or 256),
        "chunk_overlap_tokens": int(given("chunk_overlap_tokens", 32)),
        "split_seed": int(given("split_seed", 13)),
        "review_policy": settings.get("review_policy") or "auto",
        "pii_residual": settings.get("pii_residual") or "review",
        "auto_accept_threshold": float(given("auto_accept_threshold", 0.6)),
        "review_sample_rate": float(given("review_sample_rate", 0.05)),
    }


def _screening_version_before(settings: dict) -> str:
    """assets/privacy/assets.py `screening_config(...).version` as it hashed the stored dict."""
    from assets.pii.recognizers import validate_allow_terms
    from assets.privacy.assets import SCREEN_VERSION
    from assets.privacy.screening import SCREENING_RULES_VERSION

    entities = settings.get("pii_entities")
    basis = json.dumps(
        [
            SCREEN_VERSION,
            SCREENING_RULES_VERSION,
            settings.get("pii_policy") or "redact",
            settings.get("pii_recognizers") or [],
            sorted(t.casefold() for t in validate_allow_terms(settings.get("pii_allow_terms"))),
            None if entities is None else sorted(dict.fromkeys(entities)),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


@pytest.mark.parametrize("stored", STORED)
def test_dataset_settings_and_screening_version_are_unchanged(stored: dict) -> None:
    from assets.dataset.assets import dataset_settings, generation_id
    from assets.privacy.assets import screening_config

    settings = ProjectSettings.load(stored)
    ours, before = dataset_settings(settings), _dataset_settings_before(stored)
    assert json.dumps(ours, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert generation_id(["a"], ours, "v") == generation_id(["a"], before, "v")
    version = _screening_version_before(stored)
    assert screening_config(settings).version == screening_config(stored).version == version


def test_a_stored_setting_that_does_not_load_fails_screening() -> None:
    from assets.failures import StageFailure
    from assets.privacy.assets import screening_config

    with pytest.raises(StageFailure) as raised:
        screening_config({"pii_policy": "shred"}, "examples")
    failure = raised.value
    assert (failure.stage, failure.code, failure.details) == (
        "examples",
        "invalid_setting",
        {"setting": "pii_policy"},
    )
    assert "settings.pii_policy must be one of allow, block, redact" in failure.cause


# --- the API: decode errors in the settings' words, limits in the OpenAPI document --------------


@pytest.fixture(scope="module")
def api() -> Any:
    """Litestar with the app's error handler and the app's bodies (no database needed)."""
    from litestar import Litestar, patch, put
    from litestar.exceptions import HTTPException
    from litestar.testing import TestClient

    from api import schemas
    from api.errors import http_error_handler

    @patch("/projects/{project:str}")
    async def update(project: str, data: schemas.ProjectUpdate) -> dict:
        return {"settings": msgspec.to_builtins(data.settings)}

    @put("/deployments/{version:int}/runtime")
    async def set_runtime(
        version: int, data: schemas.ServingRuntime, dry_run: bool = False
    ) -> dict:
        return msgspec.to_builtins(data)

    app = Litestar(
        [update, set_runtime],
        exception_handlers={HTTPException: http_error_handler},
        signature_namespace={"schemas": schemas},  # the handlers' annotations are strings
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "setting", "message"),
    [
        ({"settings": {"chunk_tokens": 8}}, "chunk_tokens", "settings.chunk_tokens must be an integer between 32 and 4096"),
        ({"settings": {"refusal_share": 0.7}}, "refusal_share", "settings.refusal_share must be a number between 0 and 0.5"),
        ({"settings": {"pii_policy": "shred"}}, "pii_policy", "settings.pii_policy must be one of"),
        ({"settings": {"runtime": {"max_batch": 100}}}, "runtime", "settings.runtime.max_batch must be an integer between 1 and 64"),
        ({"settings": {"pii_recognizers": [{"name": "x"}]}}, "pii_recognizers", "settings.pii_recognizers[0] needs entity_type"),
        ({"settings": {"colour": "blue"}}, "colour", "settings.colour is not a project setting"),
    ],
)  # fmt: skip
def test_a_setting_refused_while_decoding_answers_invalid_settings(
    api: Any, body: dict, setting: str, message: str
) -> None:
    response = api.patch("/projects/handbook", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_settings"
    assert error["message"].startswith(message), error["message"]
    assert error["details"]["setting"] == setting


def test_other_decode_errors_stay_invalid_request(api: Any) -> None:
    response = api.patch("/projects/handbook", json={"name": 3})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    ok = api.patch("/projects/handbook", json={"settings": {"chunk_tokens": 128, "runtime": None}})
    assert ok.status_code == 200 and ok.json()["settings"]["chunk_tokens"] == 128


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_batch": 100}, "settings.runtime.max_batch must be an integer between 1 and 64"),
        ({"kind": "vllm"}, "settings.runtime.kind must be one of"),
        ({"gpu": 1}, "settings.runtime.gpu is not a field of runtime"),
    ],
)
def test_a_runtime_body_is_the_runtime_setting(api: Any, body: dict, message: str) -> None:
    response = api.put("/deployments/2/runtime", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_settings" and error["details"]["setting"] == "runtime"
    assert error["message"].startswith(message), error["message"]
    # A parameter beside the body is not a setting.
    other = api.put("/deployments/2/runtime?dry_run=maybe", json={})
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_request"


def test_the_openapi_document_shows_defaults_and_limits(api: Any) -> None:
    schemas = api.get("/schema/openapi.json").json()["components"]["schemas"]
    change = schemas["ProjectSettingsChange"]["properties"]
    assert (change["chunk_tokens"]["minimum"], change["chunk_tokens"]["maximum"]) == (32, 4096)
    assert "Default: 256." in change["chunk_tokens"]["description"]
    assert (change["refusal_share"]["minimum"], change["refusal_share"]["maximum"]) == (0, 0.5)
    assert change["near_dup_threshold"]["exclusiveMinimum"] == 0
    assert change["generators"]["minItems"] == 1
    assert change["system_prompt"]["maxLength"] == 2000
    assert change["pii_allow_terms"]["maxItems"] == ps.MAX_ALLOW_TERMS
    runtime = schemas["ServingRuntime"]["properties"]
    assert (runtime["max_batch"]["minimum"], runtime["max_batch"]["maximum"]) == (1, 64)
    assert runtime["base_url"]["pattern"] == ps.URL_PATTERN
    recognizer = schemas["PiiRecognizer"]["properties"]
    assert recognizer["entity_type"]["pattern"] == ps.ENTITY_TYPE_PATTERN
    assert recognizer["score"]["default"] == ps.DEFAULT_RECOGNIZER_SCORE
    for name, field in change.items():
        assert field.get("description"), name


# --- a stored setting that no longer loads fails the stage --------------------------------------


def test_project_handle_fails_the_stage_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assets.project import project_handle
    from pipelines.partitions import tenant_project
    from resources.repository import TenantScope, create_tenant
    from resources.settings import get_settings

    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    db = Database()
    db.migrate()
    with db.session() as session:
        tenant, _ = create_tenant(session, "acme", "Acme")
        scope = TenantScope(session, tenant.id)
        project = scope.create_project("handbook", "Handbook", {"chunk_tokens": 8})
        run = scope.add_run(project.id, "pipeline", {})
        run_id = run.id
    seen: list[Any] = []

    @dg.asset(partitions_def=tenant_project)
    def normalized_documents(context, db: Database, store: ObjectStoreResource) -> None:
        seen.append(project_handle(context, db, store).settings)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(tenant_project.name, ["acme__handbook"])
    result = dg.materialize(
        [normalized_documents],
        partition_key="acme__handbook",
        instance=instance,
        resources={"db": db, "store": ObjectStoreResource()},
        tags={"privatune/run_id": run_id},
        raise_on_error=False,
    )
    assert not result.success and seen == []
    with db.session() as session:
        events = TenantScope(session, tenant.id).run_events(run_id)
        failed = [e for e in events if e.kind == "stage_failed"]
        assert len(failed) == 1 and failed[0].stage == "normalized_documents"
        data = failed[0].data
    assert (data["code"], data["details"]) == ("invalid_setting", {"setting": "chunk_tokens"})
    assert "settings.chunk_tokens must be an integer between 32 and 4096" in data["cause"]
    assert "PATCH /v1/projects/handbook with a valid settings.chunk_tokens" in data["action"]

    with db.session() as session:
        TenantScope(session, tenant.id).project("handbook").settings = {"chunk_tokens": 128}
    fixed = dg.materialize(
        [normalized_documents],
        partition_key="acme__handbook",
        instance=instance,
        resources={"db": db, "store": ObjectStoreResource()},
    )
    assert fixed.success and seen == [ProjectSettings(chunk_tokens=128)]


# --- the documentation -------------------------------------------------------------------------


def _documented_fields(kind: type[Any], prefix: str = "") -> dict[str, Any]:
    """Every field of the settings, nested ones with their path (a recogniser's as `[].`)."""
    fields: dict[str, Any] = {}
    for info, field in zip(
        msgspec.inspect.type_info(kind).fields, msgspec.structs.fields(kind), strict=True
    ):
        name = prefix + field.name
        fields[name] = (_arm(info.type), field.default)
        value = _arm(info.type)
        if isinstance(value, msgspec.inspect.VarTupleType):
            value = value.item_type
            name += "[]"
        if isinstance(value, msgspec.inspect.StructType):
            fields |= _documented_fields(value.cls, name + ".")
    return fields


def test_the_configuration_document_lists_every_setting_with_its_default_and_limits() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text.split("## Project settings", 1)[1].split("\n## ", 1)[0]
    rows = {
        m.group(1): (m.group(2).strip(), m.group(3).strip())
        for m in re.finditer(r"^\| `([\w.\[\]]+)` \|([^|]*)\|([^|]*)\|", section, re.M)
    }
    fields = _documented_fields(ProjectSettings)
    assert sorted(rows) == sorted(fields)
    for name, (node, default) in fields.items():
        documented, limits = rows[name]
        if default is None:
            assert documented == "unset", name
        elif default is msgspec.NODEFAULT:
            assert documented == "required", name
        elif isinstance(default, str) and len(default) > 40:
            constant = next(
                k for k, v in vars(ps).items() if k.startswith("DEFAULT_") and v == default
            )
            assert documented == f"`{constant}`", name
        else:
            assert documented == f"`{msgspec.json.encode(default).decode()}`", name
        node = getattr(node, "value_type", getattr(node, "item_type", node))
        for bound in ("ge", "gt", "le", "min_length", "max_length"):
            value = getattr(node, bound, None)
            if value:
                number = str(int(value)) if float(value).is_integer() else repr(value)
                assert number in limits, (name, bound, limits)
        for value in getattr(node, "values", ()):
            assert f"`{value}`" in limits, (name, value)
