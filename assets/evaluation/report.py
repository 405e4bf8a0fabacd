"""The evaluation report: per-question scores for each system (base model, candidate adapter,
active deployment), their summary, the promotion gate's verdict, and the HTML rendering with
plots."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment

from assets.evaluation.metrics import (
    answer_contains,
    citation_accuracy,
    exact_match,
    fuzzy_match,
    is_refusal,
    latency_summary,
    mean,
    refusal_accuracy,
    semantic_similarity,
    unsupported_claim_rate,
)

# Metrics where higher is better, and where lower is; the gate compares these.
HIGHER_BETTER = (
    "answer_contains",
    "model_semantic_similarity",
    "model_answer_kept",
    "exact_match",
    "fuzzy_match",
    "semantic_similarity",
    "refusal_accuracy",
    "citation_accuracy",
)
LOWER_BETTER = ("unsupported_claim_rate",)
# answer_contains is measured for references up to this many words (facts, not sentences).
SHORT_REFERENCE_WORDS = 10
# The gate blocks on a metric only when the candidate is worse by more than the margin on
# average AND the per-question differences make "worse at all" likely: the lower end of a
# paired bootstrap interval (GATE_CONFIDENCE) of the drop is above zero. A few questions that
# went either way on a small gold split do not block a deployment.
GATE_CONFIDENCE = 0.9
_BOOTSTRAP_RESAMPLES = 2000
# Per-question value of each metric, in a row's system entry.
ROW_METRICS = {
    "answer_contains": "answer_contains",
    "exact_match": "exact_match",
    "fuzzy_match": "fuzzy_match",
    "semantic_similarity": "semantic_similarity",
    "unsupported_claim_rate": "unsupported_claim_rate",
    "citation_accuracy": "citation_correct",
    "refusal_accuracy": "refusal_correct",
    "model_semantic_similarity": "model_semantic_similarity",
    "model_answer_kept": "model_answer_kept",
}
DEFAULT_MARGINS = {
    "answer_contains": 0.05,
    # The model's own text, before the answer is checked against the evidence: an adapter
    # worse than its base (or the active one) at writing the answer does not deploy, even
    # where the evidence check would hide it from users.
    "model_semantic_similarity": 0.05,
    "semantic_similarity": 0.02,
    "fuzzy_match": 0.03,
    "refusal_accuracy": 0.05,
    "citation_accuracy": 0.05,
    "unsupported_claim_rate": 0.05,
}


def score_rows(
    questions: list[dict], answers: dict[str, list[Any]], refusal_texts: list[str]
) -> list[dict]:
    """One row per question: each system's answer and scores. `questions` carry question,
    reference, kind (answer | refusal | escalation) and document_id; `answers[system][i]` is an
    `Answered` for question i."""
    rows = []
    systems = list(answers)
    semantic = {
        s: semantic_similarity([a.text for a in answers[s]], [q["reference"] for q in questions])
        for s in systems
    }
    generated = {
        s: semantic_similarity(
            [a.generated for a in answers[s]], [q["reference"] for q in questions]
        )
        for s in systems
    }
    for i, q in enumerate(questions):
        row: dict[str, Any] = {
            "id": q["id"],
            "kind": q["kind"],
            "source": q.get("source", "generated"),
            "question": q["question"],
            "reference": q["reference"],
            "document_id": q.get("document_id"),
        }
        for s in systems:
            a = answers[s][i]
            refused = a.prepared.refusal is not None or is_refusal(a.text, *refusal_texts)
            cited = [c["document_id"] for c in a.prepared.citations]
            entry: dict[str, Any] = {
                "answer": a.text,
                "refused": refused,
                "confidence": round(a.prepared.confidence, 4),
                "cited_documents": cited,
                "refusal_correct": float((q["kind"] != "answer") == refused),
            }
            if q["kind"] == "answer":
                document = q.get("document_id")
                entry.update(
                    # A long reference (a generated answer sentence) is not a fact to find
                    # in the answer: semantic and fuzzy match measure those.
                    answer_contains=(
                        answer_contains(a.text, q["reference"])
                        if len(q["reference"].split()) <= SHORT_REFERENCE_WORDS
                        else None
                    ),
                    exact_match=exact_match(a.text, q["reference"]),
                    fuzzy_match=fuzzy_match(a.text, q["reference"]),
                    semantic_similarity=semantic[s][i],
                    unsupported_claim_rate=(
                        0.0 if refused else unsupported_claim_rate(a.text, a.prepared.contexts)
                    ),
                    # the model's own answer (None where nothing was generated: a refusal)
                    model_semantic_similarity=(generated[s][i] if a.generated.strip() else None),
                    model_answer_kept=(float(a.kept) if a.generated.strip() else None),
                    # None: the question names no document (a project question may not)
                    citation_correct=(citation_accuracy([cited], [document]) if document else None),
                )
            row[s] = entry
        rows.append(row)
    return rows


def summarize(rows: list[dict], systems: list[str]) -> dict[str, dict[str, float]]:
    answerable = [r for r in rows if r["kind"] == "answer"]
    out = {}
    for s in systems:
        cited = [
            r[s]["citation_correct"] for r in answerable if r[s]["citation_correct"] is not None
        ]
        contained = [
            r[s]["answer_contains"] for r in answerable if r[s].get("answer_contains") is not None
        ]
        model = {
            metric: [r[s][metric] for r in answerable if r[s].get(metric) is not None]
            for metric in ("model_semantic_similarity", "model_answer_kept")
        }
        out[s] = {
            **({"answer_contains": mean(contained)} if contained else {}),
            **{metric: mean(values) for metric, values in model.items() if values},
            "exact_match": mean([r[s]["exact_match"] for r in answerable]),
            "fuzzy_match": mean([r[s]["fuzzy_match"] for r in answerable]),
            "semantic_similarity": mean([r[s]["semantic_similarity"] for r in answerable]),
            "unsupported_claim_rate": mean([r[s]["unsupported_claim_rate"] for r in answerable]),
            "citation_accuracy": mean(cited),
            "refusal_accuracy": refusal_accuracy(
                [r["kind"] for r in rows], [r[s]["refused"] for r in rows]
            ),
        }
    return out


# The question sets a report summarises apart: what the generator wrote (the gold split) and
# what the project's people wrote (its evaluation set). Built-in off-topic probes count in both.
QUESTION_SETS = {"generated": "generated gold split", "project": "the project's evaluation set"}


def set_rows(rows: list[dict], name: str) -> list[dict]:
    """A question set's rows with the built-in probes (empty without answerable questions)."""
    own = [r for r in rows if r.get("source", "generated") in (name, "builtin")]
    if any(r["kind"] == "answer" and r.get("source", "generated") == name for r in own):
        return own
    return []


def summarize_sets(rows: list[dict], systems: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """`summarize` per question set that has answerable questions; each set's refusal accuracy
    also counts the built-in probes."""
    return {
        name: summarize(own, systems) for name in QUESTION_SETS if (own := set_rows(rows, name))
    }


def latency(first_token: list[float], totals: list[float], tokens: list[int]) -> dict[str, float]:
    """Latency figures of answers generated one at a time (concurrency 1)."""
    out = latency_summary(totals, tokens)
    out["first_token_p50_s"] = (
        round(sorted(first_token)[len(first_token) // 2], 4) if first_token else 0.0
    )
    out["latency_samples"] = len(totals)
    return out


def failure_order(rows: list[dict], system: str) -> list[dict]:
    """Failures first: refusal mistakes, then answerable questions by semantic similarity."""

    def key(r: dict) -> tuple:
        entry = r[system]
        wrong_refusal = entry["refusal_correct"] < 1
        return (not wrong_refusal, entry.get("semantic_similarity", 1.0), r["id"])

    return sorted(rows, key=key)


@dataclass
class GateVerdict:
    passed: bool
    compared_with: str
    reasons: list[str] = field(default_factory=list)
    deltas: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "compared_with": self.compared_with,
            "reasons": self.reasons,
            "deltas": self.deltas,
        }


def paired_drop(rows: list[dict], metric: str, candidate: str, reference: str) -> list[float]:
    """Per question, how much worse the candidate is than the reference on `metric` (positive:
    worse), over the rows where both have a value."""
    key = ROW_METRICS[metric]
    sign = -1.0 if metric in HIGHER_BETTER else 1.0
    out = []
    for r in rows:
        a, b = (r.get(candidate) or {}).get(key), (r.get(reference) or {}).get(key)
        if a is not None and b is not None:
            out.append(sign * (float(a) - float(b)))
    return out


def drop_interval(drops: list[float], confidence: float = GATE_CONFIDENCE) -> tuple[float, float]:
    """A paired bootstrap interval of the mean drop (seeded: the same rows, the same interval)."""
    import numpy as np

    if not drops:
        return 0.0, 0.0
    values = np.asarray(drops, dtype=float)
    rng = np.random.default_rng(0)
    means = rng.choice(values, size=(_BOOTSTRAP_RESAMPLES, len(values))).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def gate(
    summary: dict[str, dict[str, float]],
    candidate: str,
    reference: str,
    margins: dict[str, float],
    latency_budget_p95_s: float | None,
    rows: list[dict] | None = None,
) -> GateVerdict:
    """The promotion gate: the candidate may not be worse than the reference (the active
    deployment, or the base model before the first deployment) by more than each metric's
    margin, nor slower than the latency budget at p95. With the per-question `rows`, a drop
    beyond the margin blocks only when the paired bootstrap interval of the drop lies above
    zero (the candidate is worse, not merely unlucky on a few questions)."""
    cand, ref = summary[candidate], summary[reference]
    reasons, deltas = [], {}
    for metric, margin in sorted(margins.items()):
        if metric not in cand or metric not in ref:
            continue
        delta = cand[metric] - ref[metric]
        deltas[metric] = round(delta, 4)
        worse = -delta if metric in HIGHER_BETTER else delta
        if worse <= margin:
            continue
        interval = ""
        if rows is not None and metric in ROW_METRICS:
            low, high = drop_interval(paired_drop(rows, metric, candidate, reference))
            if low <= 0.0:
                continue  # within what chance on these questions gives
            interval = f"; {GATE_CONFIDENCE:.0%} interval of the drop {low:.3f}..{high:.3f}"
        reasons.append(
            f"{metric} {cand[metric]:.3f} is {worse:.3f} worse than {reference}'s "
            f"{ref[metric]:.3f} (margin {margin:.3f}{interval})"
        )
    p95 = cand.get("latency_p95_s")
    if latency_budget_p95_s is not None and p95 is not None and p95 > latency_budget_p95_s:
        reasons.append(
            f"latency p95 {p95:.2f} s is over the budget of {latency_budget_p95_s:.2f} s"
        )
    return GateVerdict(not reasons, reference, reasons, deltas)


def promotion_verdict(
    summary: dict[str, dict[str, float]],
    margins: dict[str, float],
    latency_budget_p95_s: float | None,
    compare_first_with_base: bool = True,
    sets: dict[str, dict[str, dict[str, float]]] | None = None,
    rows: list[dict] | None = None,
) -> GateVerdict:
    """The candidate against the active deployment when there is one, else against the base
    model it was trained from (`compare_first_with_base`, the default: a first adapter worse
    than its base model does not deploy; off, only the latency budget blocks it). With `sets`
    (`summarize_sets`), the margins hold on each question set, the project's own evaluation
    set included, not only on what the generator wrote. With the per-question `rows` a drop
    must also be unlikely to be chance (`gate`)."""
    reference = "active" if "active" in summary else "base"
    latency = gate(summary, "candidate", reference, {}, latency_budget_p95_s)
    if reference == "base" and not compare_first_with_base:
        overall = gate(summary, "candidate", "base", margins, None)
        return GateVerdict(not latency.reasons, "base", latency.reasons, overall.deltas)
    reasons, deltas = [], {}
    for name, set_summary in (sets or {"generated": summary}).items():
        if reference not in set_summary:
            continue
        own = set_rows(rows, name) if rows is not None and sets else rows
        verdict = gate(set_summary, "candidate", reference, margins, None, own)
        label = QUESTION_SETS.get(name, name)
        reasons += [f"on {label}: {r}" for r in verdict.reasons]
        deltas.update(
            {k if name == "generated" else f"{name}.{k}": v for k, v in verdict.deltas.items()}
        )
    reasons += latency.reasons
    return GateVerdict(not reasons, reference, reasons, deltas)


def _plots(report: dict) -> dict[str, str]:
    """Bar charts of the quality metrics and of latency per system, as base64 PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(report["summary"])
    out = {}
    metrics = [m for m in (*HIGHER_BETTER, *LOWER_BETTER) if m in report["summary"][systems[0]]]
    fig, ax = plt.subplots(figsize=(9, 3.4), dpi=100)
    width = 0.8 / max(1, len(systems))
    for i, s in enumerate(systems):
        ax.bar(
            [x + i * width for x in range(len(metrics))],
            [report["summary"][s][m] for m in metrics],
            width,
            label=s,
        )
    ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(metrics))])
    ax.set_xticklabels([m.replace("_", " ") for m in metrics], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Quality on the gold split (unsupported claim rate: lower is better)", fontsize=9)
    out["quality"] = _png(fig, plt)
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=100)
    for i, key in enumerate(("first_token_p50_s", "latency_p50_s", "latency_p95_s")):
        ax.bar(
            [x + i * 0.25 for x in range(len(systems))],
            [report["summary"][s].get(key, 0.0) for s in systems],
            0.25,
            label=key.replace("_", " "),
        )
    ax.set_xticks([x + 0.25 for x in range(len(systems))])
    ax.set_xticklabels(systems, fontsize=8)
    ax.set_ylabel("seconds", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("Latency, one request at a time", fontsize=9)
    out["latency"] = _png(fig, plt)
    return out


def _png(fig: Any, plt: Any) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


_TEMPLATE = Environment(autoescape=True).from_string(
    """<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {{ r.adapter_version }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;font-size:.85rem}th{background:#f3f3f3}
.bad{background:#fff1f0}.num{text-align:right}.pass{color:#11691f}.fail{color:#a4161a}</style></head><body>
<h1>Evaluation: {{ r.tenant }}/{{ r.project }}, adapter {{ r.adapter_version }}</h1>
<p>Base model {{ r.base_model }}; dataset {{ r.dataset_version }}; {{ r.questions }} gold questions and
{{ r.refusal_questions }} refusal / escalation probes; retrieval recall {{ '%.3f'|format(r.retrieval_recall) }}.
Every system answers through the same retrieval index and refusal threshold.</p>
<h2 class="{{ 'pass' if r.gate.passed else 'fail' }}">Promotion gate: {{ 'passed' if r.gate.passed else 'blocked' }}
(candidate vs {{ r.gate.compared_with }})</h2>
{% if r.gate.reasons %}<ul>{% for reason in r.gate.reasons %}<li>{{ reason }}</li>{% endfor %}</ul>{% endif %}
<table><tr><th>system</th>{% for m in metrics %}<th>{{ m.replace('_', ' ') }}</th>{% endfor %}</tr>
{% for name, m in r.summary.items() %}<tr><td>{{ name }}{% if name in r.systems %} ({{ r.systems[name] }}){% endif %}</td>
{% for k in metrics %}<td class="num">{{ '%.3f'|format(m.get(k, 0)) }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for name, set_summary in (r.summary_by_set or {}).items() %}
<h3>On {{ sets.get(name, name) }}{% if r.question_sets and r.question_sets.get(name) %} ({{ r.question_sets[name].answerable }} answerable questions){% endif %}</h3>
<table><tr><th>system</th>{% for m in quality %}<th>{{ m.replace('_', ' ') }}</th>{% endfor %}</tr>
{% for name2, m in set_summary.items() %}<tr><td>{{ name2 }}</td>{% for k in quality %}<td class="num">{{ '%.3f'|format(m.get(k, 0)) }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endfor %}
<p><img alt="quality per system" src="data:image/png;base64,{{ plots.quality }}">
<img alt="latency per system" src="data:image/png;base64,{{ plots.latency }}"></p>
<h2>Questions (candidate's failures first)</h2>
<table><tr><th>kind</th><th>set</th><th>question</th><th>reference</th>{% for s in r.systems %}<th>{{ s }}</th>{% endfor %}<th>candidate semantic</th></tr>
{% for q in r.rows %}<tr class="{{ 'bad' if q.candidate.refusal_correct < 1 or q.candidate.get('semantic_similarity', 1) < 0.6 or q.candidate.get('citation_correct', 1) < 1 else '' }}">
<td>{{ q.kind }}</td><td>{{ q.get('source', 'generated') }}</td><td>{{ q.question }}</td><td>{{ q.reference }}</td>
{% for s in r.systems %}<td>{{ q[s].answer }}{% if q[s].refused %} <em>(refused)</em>{% endif %}</td>{% endfor %}
<td class="num">{{ '%.2f'|format(q.candidate.get('semantic_similarity', 0)) }}</td></tr>{% endfor %}
</table></body></html>"""
)

SUMMARY_COLUMNS = (
    *HIGHER_BETTER,
    *LOWER_BETTER,
    "first_token_p50_s",
    "latency_p50_s",
    "latency_p95_s",
    "tokens_per_second",
)


def render_html(report: dict) -> str:
    return _TEMPLATE.render(
        r=report,
        plots=_plots(report),
        metrics=SUMMARY_COLUMNS,
        quality=(*HIGHER_BETTER, *LOWER_BETTER),
        sets=QUESTION_SETS,
    )
