"""The project settings form, generated from the one typed definition
(resources/project_settings.py `ProjectSettings`): one input per field with the field's limits,
description and default read from its annotations (nested settings as fieldsets, the
recognisers as rows), and the posted form read back into settings as stored.

A value equal to its default is stored as unset, so it keeps following the default (the
database keeps only what the tenant set); a blank input means the default. Values the form
cannot turn into their type are passed on as typed, so the settings' own validation names them
(`invalid_settings`, in the words of `decode_error`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import inspect as mi

from resources.project_settings import ProjectSettings

# Field name -> group; fields not named here land in "Other", so a new setting shows up.
GROUPS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "privacy",
        "Privacy",
        "How personal data in the documents is found and what happens to it.",
        ("pii_policy", "pii_recognizers", "pii_allow_terms", "pii_entities", "pii_residual"),
    ),
    (
        "dataset",
        "Dataset",
        "How documents become training examples, and which ones need a person's review.",
        (
            "chunk_tokens",
            "chunk_overlap_tokens",
            "split_seed",
            "refusal_text",
            "escalation_text",
            "refusal_share",
            "generators",
            "generator_model",
            "review_policy",
            "auto_accept_threshold",
            "review_sample_rate",
        ),
    ),
    (
        "quality",
        "Quality and duplicates",
        "Which documents are kept out of the dataset.",
        ("quality_threshold", "near_dup_threshold"),
    ),
    (
        "training",
        "Training",
        "The model the adapter is trained on, and how long.",
        ("base_model", "train_steps"),
    ),
    (
        "serving",
        "Serving",
        "How deployments answer, and when a new model may replace the active one.",
        ("system_prompt", "retrieval_min_confidence", "promotion", "runtime"),
    ),
)
LONG_TEXT = 200  # longer strings get a text area
REMOVE = "_remove"  # a recogniser row's "remove" checkbox


@dataclass(frozen=True)
class Choices:
    """What a field offers beyond its type: `options` to tick (a list of strings), `implied`
    (the ticked set its unset default stands for), `keys` of a mapping with a placeholder each,
    `suggestions` for a text input."""

    options: tuple[str, ...] = ()
    implied: frozenset[str] | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    suggestions: tuple[str, ...] = ()


def field_id(name: str) -> str:
    """The HTML id of a form field (or recogniser row) by its name."""
    return "f-" + name.replace(".", "-").replace("_", "-")


@dataclass
class Row:
    name: str  # e.g. pii_recognizers.0
    fields: list[FormField]
    error: str | None = None
    new: bool = False

    @property
    def id(self) -> str:
        return field_id(self.name)


@dataclass
class FormField:
    """One input (or fieldset) of the form; `name` is the form field's name, the setting's path
    with dots (`promotion.latency_budget_p95_s`, `pii_recognizers.0.score`)."""

    name: str
    key: str  # the setting's own name
    label: str
    description: str
    kind: str  # text | textarea | number | select | checkboxes | lines | words | struct | rows | mapping
    optional: bool
    default: Any  # JSON form; None: unset
    text: str = ""  # what a text, number or select input shows
    checked: frozenset[str] = frozenset()
    attrs: dict[str, Any] = field(default_factory=dict)
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    suggestions: tuple[str, ...] = ()
    children: list[FormField] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    error: str | None = None

    @property
    def id(self) -> str:
        return field_id(self.name)

    @property
    def default_text(self) -> str:
        if self.default is None or self.default in ((), [], {}):
            return ""
        if isinstance(self.default, list):
            return ", ".join(map(str, self.default))
        if isinstance(self.default, bool):
            return "yes" if self.default else "no"
        return str(self.default)


@dataclass
class Group:
    key: str
    title: str
    description: str
    fields: list[FormField]


# --- the settings' types ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    node: Any  # msgspec.inspect type, past descriptions and null
    optional: bool
    description: str


def _kind(node: Any) -> _Kind:
    optional, description = False, ""
    while True:
        if isinstance(node, mi.Metadata):
            description = (node.extra_json_schema or {}).get("description") or description
            node = node.type
        elif isinstance(node, mi.UnionType):
            arms = [t for t in node.types if not isinstance(t, mi.NoneType)]
            optional = optional or len(arms) < len(node.types)
            if len(arms) != 1:
                return _Kind(node, optional, description)
            node = arms[0]
        else:
            return _Kind(node, optional, description)


def _json(value: Any) -> Any:
    """A default or stored value in its JSON form (tuples as lists, structs as objects)."""
    return msgspec.json.decode(msgspec.json.encode(value))


_ACRONYMS = {"pii": "PII", "api": "API", "url": "URL"}


def _label(name: str) -> str:
    words = [_ACRONYMS.get(w, w) for w in name.split("_")]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def _fields(struct: type[Any]) -> list[tuple[str, _Kind, Any]]:
    """(name, kind, default in JSON form) of each field of a settings struct."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    out = []
    for f in info.fields:
        default = None
        if f.default is not mi.NODEFAULT:
            default = _json(f.default)
        elif f.default_factory is not mi.NODEFAULT:
            default = _json(f.default_factory())
        out.append((f.encode_name, _kind(f.type), default))
    return out


def _is_text_list(node: Any) -> bool:
    return isinstance(node, mi.VarTupleType | mi.ListType) and isinstance(
        _kind(node.item_type).node, mi.StrType
    )


def _literal_items(node: Any) -> tuple[str, ...] | None:
    if isinstance(node, mi.VarTupleType | mi.ListType):
        item = _kind(node.item_type).node
        if isinstance(item, mi.LiteralType):
            return tuple(map(str, item.values))
    return None


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _scalar_text(node: Any, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(node, mi.BoolType) and isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(node, mi.IntType | mi.FloatType):
        return _number_text(value)
    return str(value)


# --- building the form -----------------------------------------------------------------------


def _field(
    name: str,
    key: str,
    kind: _Kind,
    default: Any,
    value: Any,
    errors: Mapping[str, str],
    choices: Mapping[str, Choices],
    in_row: bool = False,
) -> FormField:
    node = kind.node
    chosen = choices.get(name.split(".", 1)[0] if in_row else name, Choices())
    made = FormField(
        name=name,
        key=key,
        label=_label(key),
        description=kind.description,
        kind="text",
        optional=kind.optional,
        default=default,
        error=errors.get(name),
    )
    if isinstance(node, mi.StrType):
        # Prose gets a text area; a value with an anchored pattern (a URL, a name) one line.
        anchored = (node.pattern or "").startswith("^")
        long = (node.max_length or 0) > LONG_TEXT and not in_row and not anchored
        made.kind = "textarea" if long else "text"
        made.text = "" if value is None else str(value)
        if node.max_length:
            made.attrs["maxlength"] = node.max_length
        made.suggestions = chosen.suggestions
    elif isinstance(node, mi.IntType | mi.FloatType):
        made.kind = "number"
        made.text = _scalar_text(node, value)
        low = node.ge if node.ge is not None else node.gt
        high = node.le if node.le is not None else node.lt
        if low is not None:
            made.attrs["min"] = _number_text(low)
        if high is not None:
            made.attrs["max"] = _number_text(high)
        made.attrs["step"] = "1" if isinstance(node, mi.IntType) else "any"
        if default is not None:
            made.attrs["placeholder"] = _number_text(default)
    elif isinstance(node, mi.LiteralType | mi.BoolType):
        made.kind = "select"
        values = (
            ("true", "false") if isinstance(node, mi.BoolType) else tuple(map(str, node.values))
        )
        words = {"true": "yes", "false": "no"}
        default_text = _scalar_text(node, default)
        if kind.optional or default is None:
            made.options.append(
                (
                    "",
                    "default"
                    + (f" ({words.get(default_text, default_text)})" if default_text else ""),
                )
            )
        for option in values:
            shown = words.get(option, option)
            made.options.append((option, f"{shown} (default)" if option == default_text else shown))
        made.text = _scalar_text(node, value)
    elif (items := _literal_items(node)) is not None or (chosen.options and _is_text_list(node)):
        made.kind = "checkboxes"
        options = items if items is not None else chosen.options
        made.options = [(o, o) for o in options]
        ticked = set(map(str, value)) if isinstance(value, list) else set(chosen.implied or ())
        made.options += [(o, o) for o in sorted(ticked - set(options))]
        made.checked = frozenset(ticked)
    elif _is_text_list(node):
        made.kind = "words" if in_row else "lines"
        separator = ", " if in_row else "\n"
        made.text = separator.join(map(str, value or ()))
        if in_row:
            made.attrs["maxlength"] = 4000
    elif isinstance(node, mi.StructType):
        made.kind = "struct"
        current = value if isinstance(value, dict) else {}
        made.children = [
            _field(
                f"{name}.{child}",
                child,
                child_kind,
                child_default,
                current.get(child, child_default),
                errors,
                choices,
            )
            for child, child_kind, child_default in _fields(node.cls)
        ]
    elif isinstance(node, mi.VarTupleType | mi.ListType) and isinstance(
        _kind(node.item_type).node, mi.StructType
    ):
        made.kind = "rows"
        item = _kind(node.item_type).node
        children = _fields(item.cls)
        rows = list(value) if isinstance(value, list) else []
        for index, row in enumerate([*rows, {}]):
            row_name = f"{name}.{index}"
            current = row if isinstance(row, dict) else {}
            made.rows.append(
                Row(
                    row_name,
                    [
                        _field(
                            f"{row_name}.{c}",
                            c,
                            ck,
                            cd,
                            current.get(c, cd if current else None),
                            errors,
                            choices,
                            True,
                        )
                        for c, ck, cd in children
                    ],
                    errors.get(row_name),
                    new=index == len(rows),
                )
            )
    elif isinstance(node, mi.DictType):
        made.kind = "mapping"
        current = value if isinstance(value, dict) else {}
        value_kind = _kind(node.value_type)
        keys = dict(chosen.keys)
        keys.update({k: "" for k in current if k not in keys})
        for child, placeholder in keys.items():
            child_field = _field(
                f"{name}.{child}", child, value_kind, None, current.get(child), errors, choices
            )
            child_field.label = child
            if placeholder:
                child_field.attrs["placeholder"] = placeholder
            made.children.append(child_field)
    else:
        made.text = "" if value is None else str(value)
    return made


def settings_form(
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
    choices: Mapping[str, Choices] | None = None,
) -> list[Group]:
    """The form's groups for settings as stored (`values`: the fields a tenant set, JSON form;
    the rest shows its default), with `errors` (form field name -> message) beside the fields."""
    errors, choices = errors or {}, choices or {}
    made = {
        name: _field(name, name, kind, default, values.get(name, default), errors, choices)
        for name, kind, default in _fields(ProjectSettings)
    }
    groups = []
    for key, title, text, names in GROUPS:
        groups.append(Group(key, title, text, [made.pop(n) for n in names if n in made]))
    if made:
        groups.append(
            Group(
                "other", "Other", "Settings of this release not grouped yet.", list(made.values())
            )
        )
    return [g for g in groups if g.fields]


def field_names(groups: Iterable[Group]) -> set[str]:
    """Every name an error can be shown beside: fields, fieldsets and recogniser rows."""
    names: set[str] = set()

    def visit(f: FormField) -> None:
        names.add(f.name)
        for child in f.children:
            visit(child)
        for row in f.rows:
            names.add(row.name)
            for child in row.fields:
                visit(child)

    for group in groups:
        for f in group.fields:
            visit(f)
    return names


_PATH = re.compile(r"^settings\.(?P<path>[A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*)")


def error_field(message: str, setting: str, names: set[str]) -> str:
    """The form field an `invalid_settings` message is about: the deepest field its path
    (`settings.pii_recognizers[0].score`) names, else the setting."""
    match = _PATH.match(message)
    if match:
        parts = re.sub(r"\[(\d+)\]", r".\1", match["path"]).split(".")
        while parts:
            candidate = ".".join(parts)
            if candidate in names:
                return candidate
            parts.pop()
    return setting


# --- reading the posted form -----------------------------------------------------------------


class _Omit:
    """A field the form leaves at its default."""


OMIT = _Omit()


def _one(form: Mapping[str, Any], name: str) -> str:
    raw = form.get(name, "")
    if isinstance(raw, list):
        raw = raw[-1] if raw else ""
    return str(raw).replace("\r\n", "\n").strip()


def _many(form: Mapping[str, Any], name: str) -> list[str]:
    raw = form.get(name)
    if raw is None:
        return []
    return [str(v) for v in (raw if isinstance(raw, list) else [raw])]


def _number(node: Any, text: str) -> Any:
    try:
        if isinstance(node, mi.IntType):
            return int(text)
        number = float(text)
        return number if math.isfinite(number) else text
    except ValueError:
        return text  # the settings' validation says what it must be


def _read(
    name: str,
    kind: _Kind,
    default: Any,
    form: Mapping[str, Any],
    choices: Mapping[str, Choices],
    in_row: bool = False,
) -> Any:
    """The field's value (JSON form) from the form, or OMIT for its default."""
    node = kind.node
    chosen = choices.get(name.split(".", 1)[0] if in_row else name, Choices())
    if isinstance(node, mi.StrType):
        text = _one(form, name)
        value: Any = text or OMIT
    elif isinstance(node, mi.IntType | mi.FloatType):
        text = _one(form, name)
        value = _number(node, text) if text else OMIT
    elif isinstance(node, mi.BoolType):
        text = _one(form, name)
        value = {"true": True, "false": False}.get(text, text) if text else OMIT
    elif isinstance(node, mi.LiteralType):
        text = _one(form, name)
        value = text or OMIT
    elif (items := _literal_items(node)) is not None or (chosen.options and _is_text_list(node)):
        ticked = _many(form, name)
        order = list(items if items is not None else chosen.options)
        value = sorted(set(ticked), key=lambda t: (order.index(t) if t in order else len(order), t))
        if chosen.implied is not None and set(value) == set(chosen.implied):
            value = OMIT
    elif _is_text_list(node):
        text = _one(form, name)
        parts = text.split(",") if in_row else text.split("\n")
        value = [p.strip() for p in parts if p.strip()]
    elif isinstance(node, mi.StructType):
        value = _read_struct(name, node.cls, form, choices, in_row) or OMIT
    elif isinstance(node, mi.VarTupleType | mi.ListType) and isinstance(
        _kind(node.item_type).node, mi.StructType
    ):
        value = _read_rows(name, _kind(node.item_type).node.cls, form, choices)
    elif isinstance(node, mi.DictType):
        value_kind = _kind(node.value_type)
        prefix = f"{name}."
        keys = [k[len(prefix) :] for k in form if k.startswith(prefix)]
        mapping = {}
        for key in keys:
            item = _read(f"{prefix}{key}", value_kind, None, form, choices)
            if item is not OMIT:
                mapping[key] = item
        value = mapping or OMIT
    else:
        value = _one(form, name) or OMIT
    if value is not OMIT and value == default:
        return OMIT
    return value


def _read_struct(
    name: str,
    struct: type[Any],
    form: Mapping[str, Any],
    choices: Mapping[str, Choices],
    in_row: bool,
) -> dict[str, Any]:
    out = {}
    for child, kind, default in _fields(struct):
        value = _read(f"{name}.{child}", kind, default, form, choices, in_row)
        if value is not OMIT:
            out[child] = value
    return out


def _read_rows(
    name: str, struct: type[Any], form: Mapping[str, Any], choices: Mapping[str, Choices]
) -> list[dict[str, Any]]:
    """The rows in their order; a row marked for removal or left blank is dropped."""
    pattern = re.compile(rf"^{re.escape(name)}\.(\d+)\.")
    indices = sorted({int(m[1]) for k in form if (m := pattern.match(k))})
    rows = []
    for index in indices:
        row_name = f"{name}.{index}"
        if _one(form, f"{row_name}.{REMOVE}"):
            continue
        filled = any(_one(form, f"{row_name}.{child}") for child, _, _ in _fields(struct))
        if filled:
            rows.append(_read_struct(row_name, struct, form, choices, True))
    return rows


def read_settings_form(
    form: Mapping[str, Any], choices: Mapping[str, Choices] | None = None
) -> dict[str, Any]:
    """The settings the posted form sets (JSON form), each field equal to its default left out."""
    choices = choices or {}
    out = {}
    for name, kind, default in _fields(ProjectSettings):
        value = _read(name, kind, default, form, choices)
        if value is not OMIT:
            out[name] = value
    return out


def settings_change(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The change that turns `stored` into `wanted`: the fields that differ, None for those
    going back to their default."""
    change: dict[str, Any] = {}
    for name in sorted(set(stored) | set(wanted)):
        if _json(stored.get(name)) != wanted.get(name):
            change[name] = wanted.get(name)
    return change
