"""The portal's settings form (api/portal/settings_form.py): generated from ProjectSettings
(every field once, limits and descriptions from the annotations), read back into the stored
settings (a round trip loses nothing; defaults stay unset), and a validation message placed
beside the field it names."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api.portal.settings_form import (
    GROUPS,
    REMOVE,
    Choices,
    FormField,
    error_field,
    field_names,
    read_settings_form,
    settings_change,
    settings_form,
)
from resources.project_settings import (
    InvalidSetting,
    ProjectSettings,
    validate_settings_change,
)

CHOICES = {
    "pii_entities": Choices(
        options=("EMAIL_ADDRESS", "EMPLOYEE_ID", "PERSON"),
        implied=frozenset({"EMAIL_ADDRESS", "PERSON"}),
    ),
    "promotion.margins": Choices(keys={"fuzzy_match": "0.03", "answer_contains": "0.05"}),
}
STORED: dict[str, Any] = {
    "chunk_tokens": 300,
    "refusal_share": 0.2,
    "refusal_text": "Not in these documents.",
    "generators": ["deterministic", "model"],
    "generator_model": {"provider": "openai", "base_url": "http://llm:8000/v1", "model": "m"},
    "review_policy": "wait",
    "pii_recognizers": [
        {"name": "badge", "entity_type": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"},
        {
            "name": "room",
            "entity_type": "ROOM",
            "pattern": r"R\d{3}",
            "score": 0.5,
            "context": ["room", "office"],
        },
    ],
    "pii_allow_terms": ["Gotham Widget", "ACME"],
    "pii_entities": ["EMPLOYEE_ID", "PERSON"],
    "promotion": {"margins": {"fuzzy_match": 0.1}, "compare_first_with_base": False},
    "runtime": {"kind": "ollama", "base_url": "http://ollama:11434/v1", "max_batch": 4},
    "train_steps": 40,
}


def _walk(fields: list[FormField]):
    for f in fields:
        yield f
        yield from _walk(f.children)
        for row in f.rows:
            yield from _walk(row.fields)


def _posted(stored: dict[str, Any]) -> dict[str, Any]:
    """What a browser posts for the form as shown (every input with its value)."""
    form: dict[str, Any] = {}
    for group in settings_form(stored, choices=CHOICES):
        for f in _walk(group.fields):
            if f.kind == "checkboxes":
                form[f.name] = sorted(f.checked)
            elif f.kind not in ("struct", "rows", "mapping"):
                form[f.name] = f.text
    return form


def test_every_setting_has_one_input_with_its_limits_and_description():
    groups = settings_form({}, choices=CHOICES)
    top = [f.key for g in groups for f in g.fields]
    assert sorted(top) == sorted(f.name for f in msgspec.structs.fields(ProjectSettings))
    assert len(top) == len(set(top))
    assert {g.key for g in groups} == {g[0] for g in GROUPS}  # nothing left in "Other"
    chunk = next(f for g in groups for f in g.fields if f.key == "chunk_tokens")
    assert (chunk.kind, chunk.attrs["min"], chunk.attrs["max"], chunk.text) == (
        "number",
        "32",
        "4096",
        "256",
    )
    assert chunk.description == "Chunk size in tokens of the base model's tokenizer."
    policy = next(f for g in groups for f in g.fields if f.key == "pii_policy")
    assert [v for v, _ in policy.options] == [
        "allow",
        "block",
        "redact",
    ] and policy.text == "redact"


def test_the_untouched_form_keeps_every_default_unset():
    assert read_settings_form(_posted({}), CHOICES) == {}


def test_the_form_round_trips_the_stored_settings():
    ProjectSettings.load(STORED)  # a valid example
    assert read_settings_form(_posted(STORED), CHOICES) == STORED


def test_a_blank_or_removed_row_is_dropped_and_a_cleared_field_goes_back_to_default():
    form = _posted(STORED)
    form[f"pii_recognizers.0.{REMOVE}"] = "1"
    form["pii_recognizers.2.name"] = ""  # the blank row for a new recogniser
    form["chunk_tokens"] = ""
    form["pii_entities"] = ["EMAIL_ADDRESS", "PERSON"]  # the default set: unset again
    read = read_settings_form(form, CHOICES)
    assert [r["name"] for r in read["pii_recognizers"]] == ["room"]
    assert "chunk_tokens" not in read and "pii_entities" not in read
    assert settings_change(STORED, read) == {
        "chunk_tokens": None,
        "pii_entities": None,
        "pii_recognizers": read["pii_recognizers"],
    }


def test_a_value_of_the_wrong_type_reaches_the_settings_validation_as_typed():
    form = _posted({})
    form["split_seed"] = "twelve"
    read = read_settings_form(form, CHOICES)
    with pytest.raises(InvalidSetting) as raised:
        validate_settings_change({}, read)
    assert raised.value.setting == "split_seed"
    assert raised.value.message.startswith("settings.split_seed must be an integer")


@pytest.mark.parametrize(
    ("message", "setting", "field"),
    [
        (
            "settings.chunk_overlap_tokens must be at most half",
            "chunk_overlap_tokens",
            "chunk_overlap_tokens",
        ),
        (
            "settings.pii_recognizers[1].score must be a number",
            "pii_recognizers",
            "pii_recognizers.1.score",
        ),
        ("settings.pii_recognizers[0]: bad regex", "pii_recognizers", "pii_recognizers.0"),
        ("settings.pii_allow_terms[3] must be", "pii_allow_terms", "pii_allow_terms"),
        ("settings.runtime: kind ollama needs base_url", "runtime", "runtime"),
        ("settings.promotion.margins: unknown metric 'x'", "promotion", "promotion.margins"),
        ("something else entirely", "train_steps", "train_steps"),
    ],
)
def test_a_message_is_shown_beside_the_field_it_names(message, setting, field):
    names = field_names(settings_form(STORED, choices=CHOICES))
    assert error_field(message, setting, names) == field
