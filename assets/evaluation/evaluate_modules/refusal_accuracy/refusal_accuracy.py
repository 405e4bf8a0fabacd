"""privatune's refusal accuracy as a local `evaluate` module: refusing (or escalating) what
should be refused, answering the rest. An answer counts as a refusal when it is one of the
`refusal_texts` (allowing small wording drift).

    evaluate.load("assets/evaluation/evaluate_modules/refusal_accuracy")
"""

import datasets
import evaluate

from assets.evaluation.metrics import is_refusal
from assets.evaluation.metrics import refusal_accuracy


class RefusalAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=(
                "predictions: answers; expected: answer, refusal or escalation per question; "
                "refusal_texts (keyword): the project's refusal and escalation texts"
            ),
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "expected": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, expected, refusal_texts=()):
        refused = [is_refusal(p, *refusal_texts) for p in predictions]
        return {"refusal_accuracy": refusal_accuracy(list(expected), refused)}
