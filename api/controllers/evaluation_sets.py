"""A project's own evaluation set (api/services/evaluation_sets.py)."""

from __future__ import annotations

from litestar import Controller, delete, get, put

from api import schemas
from api.security import requires_scope
from api.services.evaluation_sets import EvaluationSetService, QuestionIn


def _out(rows: list[dict]) -> schemas.EvaluationSet:
    return schemas.EvaluationSet(
        questions=[schemas.EvaluationQuestion(**r) for r in rows],
        answerable=sum(r["expect"] == "answer" for r in rows),
        refuse=sum(r["expect"] == "refuse" for r in rows),
    )


class EvaluationSetController(Controller):
    path = "/v1/projects/{project:str}/evaluation-set"
    tags = ["evaluations"]

    @get("/", operation_id="getEvaluationSet", sync_to_thread=True, guards=[requires_scope("read")])
    def get(self, project: str, evaluation_sets: EvaluationSetService) -> schemas.EvaluationSet:
        """The project's own evaluation questions, in order."""
        return _out(evaluation_sets.get(project))

    @put(
        "/",
        operation_id="replaceEvaluationSet",
        sync_to_thread=True,
        guards=[requires_scope("write")],
    )
    def replace(
        self,
        project: str,
        data: schemas.EvaluationSetIn,
        evaluation_sets: EvaluationSetService,
    ) -> schemas.EvaluationSet:
        """Replace the set: each question with the answer people expect (`expect: answer`,
        optionally the `document` file that holds it) or `expect: refuse` for one the documents
        do not cover. The keys of a gold file (`q`, `a`, `page`) are accepted too. Never
        trained on; the next evaluation and promotion gate use it beside the generated gold
        split."""
        questions = [
            QuestionIn(
                question=q.question or q.q,
                answer=q.answer if q.answer is not None else q.a,
                document=q.document or q.page,
                expect=q.expect,
            )
            for q in data.questions
        ]
        return _out(evaluation_sets.replace(project, questions))

    @delete(
        "/",
        operation_id="deleteEvaluationSet",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_scope("write")],
    )
    def clear(self, project: str, evaluation_sets: EvaluationSetService) -> None:
        """Remove the set: evaluations go back to the generated gold split and built-in probes."""
        evaluation_sets.clear(project)
