"""Tenant-defined PII recognisers: plain data, validated without loading Presidio, so the API
and the Dagster code location can check a project's settings without the NLP stack."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import regex

# Limits and defaults shared with the project settings that hold recognisers and allow-lists.
from resources.project_settings import (
    DEFAULT_RECOGNIZER_SCORE,
    ENTITY_TYPE_PATTERN,
    MAX_ALLOW_TERM_CHARS,
    MAX_ALLOW_TERMS,
)

_ENTITY_TYPE_RE = re.compile(ENTITY_TYPE_PATTERN)
# The flags Presidio's PatternRecognizer compiles patterns with.
_PRESIDIO_REGEX_FLAGS = regex.DOTALL | regex.MULTILINE | regex.IGNORECASE


@dataclass(frozen=True)
class CustomRecognizer:
    """A tenant-defined regex recognizer; matched case-insensitively, as Presidio does, and
    boosted when one of the `context` words is near the match."""

    name: str
    entity_type: str
    pattern: str
    score: float = DEFAULT_RECOGNIZER_SCORE
    context: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError when the recognizer could not be used as given."""
        if not self.name.strip():
            raise ValueError("custom recognizer needs a non-empty name")
        if not _ENTITY_TYPE_RE.match(self.entity_type):
            raise ValueError(
                f"custom recognizer {self.name!r}: entity_type {self.entity_type!r} must be "
                "2-41 characters of A-Z, 0-9 and _, starting with a letter (e.g. EMPLOYEE_ID)"
            )
        if not 0.0 < self.score <= 1.0:
            raise ValueError(
                f"custom recognizer {self.name!r}: score {self.score} must be in (0, 1]"
            )
        try:
            compiled = regex.compile(self.pattern, flags=_PRESIDIO_REGEX_FLAGS)
        except (regex.error, TypeError) as exc:
            raise ValueError(
                f"custom recognizer {self.name!r}: invalid regex {self.pattern!r}: {exc}"
            ) from exc
        if compiled.fullmatch("") is not None:
            raise ValueError(
                f"custom recognizer {self.name!r}: regex {self.pattern!r} matches the empty string"
            )
        if not all(isinstance(word, str) and word.strip() for word in self.context):
            raise ValueError(
                f"custom recognizer {self.name!r}: context must be a list of non-empty words"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "context": list(self.context)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CustomRecognizer:
        """Build and validate a recognizer from its JSON form; ValueError on bad input."""
        allowed = {"name", "entity_type", "pattern", "score", "context"}
        missing = {"name", "entity_type", "pattern"} - data.keys()
        if missing:
            raise ValueError(f"custom recognizer lacks {', '.join(sorted(missing))}")
        unknown = data.keys() - allowed
        if unknown:
            raise ValueError(f"custom recognizer has unknown keys {', '.join(sorted(unknown))}")
        context = data.get("context") or ()
        if isinstance(context, str):
            raise ValueError("custom recognizer context must be a list of words, not a string")
        try:
            score = float(data.get("score", DEFAULT_RECOGNIZER_SCORE))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"custom recognizer score {data.get('score')!r} is not a number"
            ) from exc
        return cls(
            name=str(data["name"]),
            entity_type=str(data["entity_type"]),
            pattern=str(data["pattern"]),
            score=score,
            context=tuple(str(word) for word in context),
        )


# --- built-in recognisers Presidio lacks, and the settings that choose what to screen ---------

STREET_ADDRESS = "STREET_ADDRESS"
# Every entity type PiiScreener can screen without a tenant recogniser: Presidio's predefined
# English recognisers and spaCy's mapped labels (tests/unit/test_pii_precision.py holds this
# list to the analyzer's), plus STREET_ADDRESS. Kept here so that settings can be checked
# without loading Presidio.
BUILTIN_ENTITIES: frozenset[str] = frozenset(
    {
        "AGE",
        "CREDIT_CARD",
        "CRYPTO",
        "DATE_TIME",
        "EMAIL",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "ID",
        "IP_ADDRESS",
        "LOCATION",
        "MAC_ADDRESS",
        "MEDICAL_LICENSE",
        "NRP",
        "ORGANIZATION",
        "PERSON",
        "PHONE_NUMBER",
        STREET_ADDRESS,
        "UK_NHS",
        "URL",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "US_ITIN",
        "US_PASSPORT",
        "US_SSN",
        "UUID",
    }
)


def validate_allow_terms(value: Any, setting: str = "pii_allow_terms") -> tuple[str, ...]:
    """The allow-list as given (a list of non-empty strings, at most MAX_ALLOW_TERMS of at most
    MAX_ALLOW_TERM_CHARS characters), stripped and without case-insensitive repeats;
    ValueError naming `setting` otherwise."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{setting} must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_ALLOW_TERMS:
        raise ValueError(f"{setting} has {len(value)} terms; at most {MAX_ALLOW_TERMS} are allowed")
    terms: dict[str, str] = {}
    for index, term in enumerate(value):
        if not isinstance(term, str) or not term.strip():
            raise ValueError(f"{setting}[{index}] must be a non-empty string, got {term!r}")
        term = " ".join(term.split())
        if len(term) > MAX_ALLOW_TERM_CHARS:
            raise ValueError(
                f"{setting}[{index}] is {len(term)} characters; at most "
                f"{MAX_ALLOW_TERM_CHARS} are allowed"
            )
        terms.setdefault(term.casefold(), term)
    return tuple(terms.values())


def validate_entities(
    value: Any, custom: Sequence[CustomRecognizer] = (), setting: str = "pii_entities"
) -> tuple[str, ...] | None:
    """The entity types to screen (None: the defaults); ValueError naming `setting` when it is
    not a non-empty list of known types (BUILTIN_ENTITIES or a custom recogniser's type)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{setting} must be a list of entity types or null, got {type(value).__name__}"
        )
    if not value:
        raise ValueError(
            f"{setting} is empty: list the entity types to screen, or leave it unset for the "
            "defaults (use pii_policy=allow to screen nothing)"
        )
    known = BUILTIN_ENTITIES | {r.entity_type for r in custom}
    entities: list[str] = []
    for index, entity in enumerate(value):
        if not isinstance(entity, str) or not _ENTITY_TYPE_RE.match(entity):
            raise ValueError(f"{setting}[{index}] is not an entity type: {entity!r}")
        if entity not in known:
            raise ValueError(
                f"{setting}[{index}]: unknown entity type {entity!r}; known types are "
                f"{', '.join(sorted(known))}"
            )
        entities.append(entity)
    return tuple(dict.fromkeys(entities))


# Street addresses, matched case-sensitively (capitalised names are much of the evidence):
# (name, regex, score). A street with a house number and a postcode or town scores above the
# usual 0.5 threshold; a street and number alone (which technical prose can mimic: "2 Hard
# Drive") scores under it, and needs one of ADDRESS_CONTEXT in the five words before it.
_CAP = r"\p{Lu}[\p{Ll}\p{M}'’]+(?:-\p{Lu}?[\p{Ll}\p{M}'’]+)*"  # a capitalised name: Queen's
_SP = r"[ \t]+"
_SEP = r"(?:,[ \t]*\n?[ \t]*|[ \t]*\n[ \t]*|[ \t]+)"  # between street and town: ", " or a line
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[-/–]\d{1,5}[A-Za-z]?)?"
_UNIT = r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm)\.?[ \t]*#?\w{1,6})?"
_EN_TYPE = (
    r"(?:Street|Road|Avenue|Lane|Drive|Boulevard|Way|Court|Place|Close|Crescent|Terrace|Square"
    r"|Parkway|Highway|Row|Mews|Gardens|Grove|Walk|Circle|Trail|Parade|Promenade|Esplanade|Quay"
    r"|Wharf|Plaza|Pike|Alley|Hill|Green|Rise|Vale|View"
    r"|(?:St|Rd|Ave|Av|Ln|Dr|Blvd|Ct|Pl|Cres|Tce|Sq|Pkwy|Hwy|Gdns|Gr|Cir)\.?)"
)
_EN_NAME = rf"(?:(?:\d{{1,3}}(?:st|nd|rd|th)|[NSEW]\.?|{_CAP}){_SP}){{0,3}}{_CAP}"
_EN_STREET = (
    rf"(?<![\w.-]){_HOUSE},?{_SP}{_EN_NAME}{_SP}{_EN_TYPE}(?:[ \t](?:[NS][EW]?|[EW]))?(?![\w-])"
)
_TOWN = rf"{_CAP}(?:[ \t-](?:(?:upon|on|am|an|der|de|la|le|sur|en)[ \t-])?{_CAP}){{0,2}}"
_US_STATE_ZIP = r"(?:[A-Z]{2}|\p{Lu}\p{Ll}+)[ \t]+\d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}"
_CA_POSTCODE = r"(?:[A-Z]{2}[ \t]+)?[A-Z]\d[A-Z][ \t]?\d[A-Z]\d"
_AU_STATE_POSTCODE = r"(?:NSW|VIC|QLD|WA|SA|TAS|ACT|NT)[ \t]+\d{4}"
_EN_AFTER = (
    rf"{_SEP}{_TOWN}(?:,?[ \t]+(?:{_US_STATE_ZIP}|{_UK_POSTCODE}|{_CA_POSTCODE}"
    rf"|{_AU_STATE_POSTCODE}))(?!\w)"
    rf"|{_SEP}{_UK_POSTCODE}(?!\w)"
)
# Continental style: the street name ends in (or is followed by) its type, the number after.
# Suffixes that end English words too ("Spring 2019", "String 5") count only before a postcode.
_DE_SUFFIXES = (
    "straße strasse str. gasse allee platz weg chaussee gracht straat laan plein gatan vägen "
    "veien gade"
).split()
_DE_SUFFIXES_WIDE = [
    *_DE_SUFFIXES,
    *"ring damm ufer steig pfad markt kade singel dijk vej gata katu".split(),
]
_DE_WORDS = "Straße Strasse Str. Gasse Allee Platz Weg Chaussee".split()
_DE_WORDS_WIDE = [*_DE_WORDS, "Ring", "Damm", "Ufer", "Markt"]


def _either(words: Sequence[str]) -> str:
    return "(?:" + "|".join(regex.escape(word) for word in words) + ")"


def _de_street(suffixes: Sequence[str], words: Sequence[str]) -> str:
    named = rf"\p{{Lu}}[\p{{Ll}}\p{{M}}-]*{_either(suffixes)}|{_CAP}[ \t-]{_either(words)}"
    return rf"(?<![\w.-])(?:{_CAP}[ \t-])?(?:{named}){_SP}{_HOUSE}(?![\w-])"


_DE_STREET = _de_street(_DE_SUFFIXES, _DE_WORDS)
_DE_STREET_WIDE = _de_street(_DE_SUFFIXES_WIDE, _DE_WORDS_WIDE)
_EU_POSTCODE_TOWN = (
    rf"{_SEP}(?:(?:D|A|CH|F|B|NL|L|I|E|P)-)?\d{{4,5}}(?:[ \t]?[A-Z]{{2}})?{_SP}{_TOWN}(?!\w)"
)
# French, Belgian: "12 rue de la Paix"; Spanish, Italian, Portuguese: "Calle Mayor 5".
_PARTICLE = (
    r"(?:(?:de|du|des|del|della|delle|dei|degli|di|da|do|dos|das|la|le|les|los|el)[ \t]+|[dl]['’])"
)
_FR_TYPE = (
    r"(?:[Rr]ue|[Aa]venue|[Aa]v\.|[Bb]oulevard|[Bb]d|[Pp]lace|[Cc]hemin|[Aa]llée|[Ii]mpasse"
    r"|[Qq]uai|[Rr]oute|[Cc]ours|[Ss]quare|[Pp]assage)"
)
_FR_STREET = (
    rf"(?<![\w.-]){_HOUSE}(?:[ \t]?(?:bis|ter))?,?{_SP}{_FR_TYPE}{_SP}{_PARTICLE}{{0,2}}{_CAP}"
    rf"(?:[ \t-]{_PARTICLE}{{0,2}}{_CAP}){{0,3}}"
)
_SOUTH_TYPE = (
    r"(?:Calle|C/|Avenida|Avda\.|Paseo|Plaza|Carrer|Rua|Travessa|Via|Viale|Piazza|Corso|Largo"
    r"|Vicolo)"
)
_SOUTH_STREET = (
    rf"(?<![\w.-]){_SOUTH_TYPE}{_SP}{_PARTICLE}{{0,2}}{_CAP}(?:{_SP}{_PARTICLE}{{0,2}}{_CAP}){{0,3}}"
    rf",?{_SP}(?:n\.?[º°o]?[ \t]*)?{_HOUSE}(?![\w-])"
)
_FR_POSTCODE_TOWN = rf"{_SEP}\d{{5}}{_SP}{_TOWN}(?:{_SP}(?:Cedex|CEDEX)(?:[ \t]\d{{1,2}})?)?(?!\w)"
ADDRESS_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("street address, town and postcode", _EN_STREET + _UNIT + rf"(?:{_EN_AFTER})", 0.7),
    ("street address", _EN_STREET, 0.3),
    ("Straße number, postcode town", _DE_STREET_WIDE + _EU_POSTCODE_TOWN, 0.7),
    ("Straße number", _DE_STREET, 0.3),
    ("rue, postcode town", _FR_STREET + _FR_POSTCODE_TOWN, 0.7),
    ("rue", _FR_STREET, 0.3),
    ("calle number, postcode town", _SOUTH_STREET + _FR_POSTCODE_TOWN, 0.7),
    ("calle number", _SOUTH_STREET, 0.3),
)
ADDRESS_CONTEXT: tuple[str, ...] = (
    "address",
    "street",
    "live",
    "lives",
    "living",
    "located",
    "resides",
    "residence",
    "home",
    "office",
    "headquarters",
    "ship",
    "shipping",
    "deliver",
    "delivery",
    "send",
    "post",
    "postal",
    "mail",
    "mailing",
    "visit",
    "moved",
    "wohnhaft",
    "adresse",
    "dirección",
    "indirizzo",
)
