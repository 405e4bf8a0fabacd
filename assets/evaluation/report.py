"""Evaluation of answers against the gold split, and its HTML rendering."""

from __future__ import annotations

from jinja2 import Environment

from assets.evaluation.metrics import exact_match, fuzzy_match, mean

_TEMPLATE = Environment(autoescape=True).from_string(
    """<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {{ r.adapter_version }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;font-size:.9rem}th{background:#f3f3f3}
.bad{background:#fff1f0}.num{text-align:right}</style></head><body>
<h1>Evaluation: {{ r.tenant }}/{{ r.project }}, adapter {{ r.adapter_version }}</h1>
<p>Base model {{ r.base_model }}; dataset {{ r.dataset_version }}; {{ r.questions }} gold questions.</p>
<table><tr><th>model</th><th>exact match</th><th>fuzzy match</th></tr>
{% for name, m in r.summary.items() %}<tr><td>{{ name }}</td><td class="num">{{ '%.3f'|format(m.exact_match) }}</td>
<td class="num">{{ '%.3f'|format(m.fuzzy_match) }}</td></tr>{% endfor %}</table>
<h2>Questions (worst adapter answers first)</h2>
<table><tr><th>question</th><th>reference</th><th>base</th><th>adapter</th><th>adapter fuzzy</th></tr>
{% for q in r.rows %}<tr class="{{ 'bad' if q.adapter.exact_match < 1 else '' }}"><td>{{ q.question }}</td><td>{{ q.reference }}</td>
<td>{{ q.base.answer }}</td><td>{{ q.adapter.answer }}</td><td class="num">{{ '%.2f'|format(q.adapter.fuzzy_match) }}</td></tr>{% endfor %}
</table></body></html>"""
)


def score(prediction: str, reference: str) -> dict:
    return {
        "answer": prediction,
        "exact_match": exact_match(prediction, reference),
        "fuzzy_match": fuzzy_match(prediction, reference),
    }


def summarize(rows: list[dict], models: list[str]) -> dict[str, dict[str, float]]:
    return {
        m: {
            "exact_match": mean([r[m]["exact_match"] for r in rows]),
            "fuzzy_match": mean([r[m]["fuzzy_match"] for r in rows]),
        }
        for m in models
    }


def render_html(report: dict) -> str:
    return _TEMPLATE.render(r=report)
