"""privatune's grounding metrics as a local `evaluate` module: the unsupported-claim rate (share
of answer sentences without support in the retrieved contexts) and citation accuracy (first
cited document = the gold document), means over the answers.

    evaluate.load("assets/evaluation/evaluate_modules/grounding")
"""

import datasets
import evaluate

from assets.evaluation.metrics import citation_accuracy
from assets.evaluation.metrics import mean
from assets.evaluation.metrics import unsupported_claim_rate


class Grounding(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=(
                "predictions: answers; contexts: the retrieved passages of each answer; "
                "cited_documents: the documents each answer cites, in order; gold_documents: "
                "the document each question's answer comes from"
            ),
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "contexts": datasets.Sequence(datasets.Value("string")),
                    "cited_documents": datasets.Sequence(datasets.Value("string")),
                    "gold_documents": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, contexts, cited_documents, gold_documents):
        return {
            "unsupported_claim_rate": mean(
                [
                    unsupported_claim_rate(p, list(c))
                    for p, c in zip(predictions, contexts, strict=True)
                ]
            ),
            "citation_accuracy": citation_accuracy(
                [list(c) for c in cited_documents], list(gold_documents)
            ),
        }
