"""privatune's answer metrics as a local `evaluate` module: exact match (normalised), fuzzy
match (rapidfuzz) and semantic similarity (all-MiniLM-L6-v2 cosine), means over the pairs.

    evaluate.load("assets/evaluation/evaluate_modules/answer_quality")
"""

import datasets
import evaluate

from assets.evaluation.metrics import exact_match
from assets.evaluation.metrics import fuzzy_match
from assets.evaluation.metrics import mean
from assets.evaluation.metrics import semantic_similarity


class AnswerQuality(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description="predictions: answers; references: gold answers",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {
            "exact_match": mean(
                [exact_match(p, r) for p, r in zip(predictions, references, strict=True)]
            ),
            "fuzzy_match": mean(
                [fuzzy_match(p, r) for p, r in zip(predictions, references, strict=True)]
            ),
            "semantic_similarity": mean(semantic_similarity(list(predictions), list(references))),
        }
