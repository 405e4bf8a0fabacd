"""Tenant-defined PII recognisers: plain data, validated without loading Presidio, so the API
and the Dagster code location can check a project's settings without the NLP stack."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import regex

_ENTITY_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,40}$")
# The flags Presidio's PatternRecognizer compiles patterns with.
_PRESIDIO_REGEX_FLAGS = regex.DOTALL | regex.MULTILINE | regex.IGNORECASE


@dataclass(frozen=True)
class CustomRecognizer:
    """A tenant-defined regex recognizer; matched case-insensitively, as Presidio does, and
    boosted when one of the `context` words is near the match."""

    name: str
    entity_type: str
    pattern: str
    score: float = 0.85
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
            score = float(data.get("score", 0.85))
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
