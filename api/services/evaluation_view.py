"""An evaluation report as the portal shows it: every metric of every system side by side
(with its direction, the difference from what the gate compared with, the margin, and whether
the gate blocked on it), each question set's figures, the HTML report's matplotlib plots, and
the questions with the evaluated system's failures first, each failure said in words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assets.evaluation.report import HIGHER_BETTER, LOWER_BETTER, QUESTION_SETS, SUMMARY_COLUMNS

# The HTML report marks a question as failed below this semantic similarity; so does the page.
FAILURE_SIMILARITY = 0.6
# Systems in the order the page shows them; any other (`at_promotion`) follows.
SYSTEM_ORDER = ("candidate", "base", "active")
_PLOT = re.compile(r'<img alt="([^"]*)" src="(data:image/png;base64,[A-Za-z0-9+/=]+)"')


@dataclass(frozen=True)
class MetricRow:
    name: str
    label: str
    better: str  # higher | lower | "" (a figure, not judged)
    values: dict[str, float | None]  # per system
    delta: float | None  # evaluated system minus the reference
    margin: float | None
    beyond_margin: bool  # worse than the reference by more than the margin
    blocked: bool  # named in the gate's reasons


@dataclass(frozen=True)
class QuestionRow:
    id: str
    kind: str
    source: str
    question: str
    reference: str
    answers: dict[str, dict[str, Any]]  # per system: answer, refused, scores
    similarity: float | None  # the evaluated system's semantic similarity
    problems: list[str]  # empty: no failure

    @property
    def failed(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class Plot:
    alt: str
    src: str  # a data: URI (the PNG the HTML report embeds)


def systems_of(report: dict[str, Any]) -> list[str]:
    names = list(report.get("summary") or {})
    return [s for s in SYSTEM_ORDER if s in names] + [s for s in names if s not in SYSTEM_ORDER]


def subject_of(systems: list[str]) -> str:
    """The system the report judges: the candidate, or the active deployment re-evaluated."""
    return "candidate" if "candidate" in systems else "active"


def _names_metric(reason: str, metric: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(metric)}(?!\w)", reason) is not None


def metric_rows(
    summary: dict[str, dict[str, Any]],
    systems: list[str],
    gate: dict[str, Any],
    subject: str,
) -> list[MetricRow]:
    """One row per metric any system has, quality metrics first, then latency and speed."""
    reference = str(gate.get("compared_with") or "")
    margins = dict(gate.get("margins") or {})
    reasons = [str(r) for r in gate.get("reasons") or []]
    known = [m for m in SUMMARY_COLUMNS if any(m in summary.get(s, {}) for s in systems)]
    others = sorted(
        {m for s in systems for m in summary.get(s, {}) if m not in SUMMARY_COLUMNS}
        - {"latency_samples"}
    )
    rows = []
    for metric in [*known, *others]:
        values = {s: _number(summary.get(s, {}).get(metric)) for s in systems}
        better = "higher" if metric in HIGHER_BETTER else "lower" if metric in LOWER_BETTER else ""
        mine, theirs = values.get(subject), values.get(reference)
        delta = mine - theirs if mine is not None and theirs is not None else None
        margin = _number(margins.get(metric))
        worse = None if delta is None or not better else (-delta if better == "higher" else delta)
        rows.append(
            MetricRow(
                metric,
                metric.replace("_", " "),
                better,
                values,
                round(delta, 4) if delta is not None else None,
                margin,
                bool(worse is not None and margin is not None and worse > margin),
                any(_names_metric(r, metric) for r in reasons),
            )
        )
    return rows


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SetTable:
    """A question set's quality figures per system."""

    label: str
    answerable: int | None
    systems: list[str]
    rows: list[tuple[str, dict[str, float | None]]]  # (metric label, value per system)


def set_tables(report: dict[str, Any], systems: list[str]) -> list[SetTable]:
    """Each question set the report summarised apart (its generated gold split, the project's
    own evaluation set), with the quality metrics any of its systems has."""
    counts = report.get("question_sets") or {}
    tables = []
    for name, summary in (report.get("summary_by_set") or {}).items():
        present = [s for s in systems if s in summary]
        if not present:
            continue
        metrics = [
            m for m in (*HIGHER_BETTER, *LOWER_BETTER) if any(m in summary[s] for s in present)
        ]
        tables.append(
            SetTable(
                QUESTION_SETS.get(name, name),
                (counts.get(name) or {}).get("answerable"),
                present,
                [
                    (m.replace("_", " "), {s: _number(summary[s].get(m)) for s in present})
                    for m in metrics
                ],
            )
        )
    return tables


def problems_of(entry: dict[str, Any]) -> list[str]:
    """Why the HTML report marks a question failed, in words (empty: it did not fail)."""
    problems = []
    if float(entry.get("refusal_correct", 1.0)) < 1:
        problems.append("refused an answerable question" if entry.get("refused") else "answered")
    similarity = entry.get("semantic_similarity")
    if similarity is not None and float(similarity) < FAILURE_SIMILARITY:
        problems.append(f"semantic similarity {float(similarity):.2f} < {FAILURE_SIMILARITY}")
    citation = entry.get("citation_correct")
    if citation is not None and float(citation) < 1:
        problems.append("cited the wrong document")
    return problems


def _refusal_problem(row: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    problems = problems_of(entry)
    if problems and problems[0] == "answered":
        problems[0] = f"answered a question it should have refused ({row.get('kind')})"
    return problems


def question_rows(
    rows: list[dict[str, Any]], systems: list[str], subject: str
) -> list[QuestionRow]:
    """The report's questions, failures of `subject` first (the report's order within each)."""
    out = []
    for r in rows:
        entry = r.get(subject) or {}
        similarity = entry.get("semantic_similarity")
        out.append(
            QuestionRow(
                str(r.get("id", "")),
                str(r.get("kind", "answer")),
                str(r.get("source", "generated")),
                str(r.get("question", "")),
                str(r.get("reference", "")),
                {s: r[s] for s in systems if isinstance(r.get(s), dict)},
                float(similarity) if similarity is not None else None,
                _refusal_problem(r, entry),
            )
        )
    return sorted(out, key=lambda q: not q.failed)


def plots_of(html: str) -> list[Plot]:
    """The PNG plots the HTML report embeds (matplotlib), reused as they are."""
    return [Plot(alt, src) for alt, src in _PLOT.findall(html)]
