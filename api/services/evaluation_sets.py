"""A project's own evaluation set: questions its people wrote, with the answers they expect
(and, optionally, the document that holds each), or questions the documents must not answer.
The evaluation report and the promotion gate use it beside the generated gold split; the
dataset builder keeps its questions out of training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequest, NotFound
from resources.database import Database
from resources.repository import TenantScope
from resources.tables import EvaluationQuestion

EXPECTS = ("answer", "refuse")
MAX_QUESTIONS = 2000
MAX_QUESTION_CHARS = 1000
MAX_ANSWER_CHARS = 2000


@dataclass(frozen=True)
class QuestionIn:
    """One question as sent: `question`/`answer`/`document` (or the gold-file keys q/a/page),
    `expect` answer (the default when an answer is given) or refuse."""

    question: str | None = None
    answer: str | None = None
    document: str | None = None
    expect: str | None = None


def _invalid(index: int, message: str) -> BadRequest:
    return BadRequest(f"questions[{index}]: {message}", code="invalid_evaluation_set")


def validate(questions: Sequence[QuestionIn], filenames: set[str]) -> list[dict[str, Any]]:
    """The questions as stored, or BadRequest naming the first one to fix."""
    if not questions:
        raise BadRequest(
            "questions is empty: send at least one question (DELETE the set to remove it)",
            code="invalid_evaluation_set",
        )
    if len(questions) > MAX_QUESTIONS:
        raise BadRequest(
            f"{len(questions)} questions; at most {MAX_QUESTIONS} are allowed",
            code="invalid_evaluation_set",
        )
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, q in enumerate(questions):
        text = " ".join((q.question or "").split())
        if not 3 <= len(text) <= MAX_QUESTION_CHARS:
            raise _invalid(i, f"question must be 3 to {MAX_QUESTION_CHARS} characters")
        key = text.casefold()
        if key in seen:
            raise _invalid(i, f"repeats questions[{seen[key]}]")
        seen[key] = i
        answer = (q.answer or "").strip() or None
        expect = q.expect or ("answer" if answer else None)
        if expect not in EXPECTS:
            raise _invalid(
                i, "expect must be answer (with the expected answer) or refuse (not covered)"
            )
        if expect == "answer" and not answer:
            raise _invalid(i, "an answerable question needs the expected answer")
        if answer and len(answer) > MAX_ANSWER_CHARS:
            raise _invalid(i, f"answer must be at most {MAX_ANSWER_CHARS} characters")
        document = (q.document or "").strip() or None
        if document is not None and document not in filenames:
            raise _invalid(
                i,
                f"document {document!r} is not one of the project's documents (give the file "
                "name as uploaded, or leave it out)",
            )
        out.append(
            {
                "question": text,
                "answer": answer if expect == "answer" else None,
                "document": document if expect == "answer" else None,
                "expect": expect,
            }
        )
    return out


def as_dict(row: EvaluationQuestion) -> dict[str, Any]:
    return {
        "id": row.id,
        "question": row.question,
        "answer": row.answer,
        "document": row.document,
        "expect": row.expect,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


class EvaluationSetService:
    """Reads and replaces a project's evaluation set; every change is audited."""

    def __init__(self, db: Database, tenant_id: str, actor: str) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.actor = actor

    def _project(self, scope: TenantScope, slug: str):
        project = scope.project(slug)
        if project is None:
            raise NotFound(f"project {slug!r} not found for this tenant", code="project_not_found")
        return project

    def get(self, project_slug: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            scope = TenantScope(session, self.tenant_id)
            project = self._project(scope, project_slug)
            return [as_dict(r) for r in scope.evaluation_questions(project.id)]

    def replace(self, project_slug: str, questions: Sequence[QuestionIn]) -> list[dict[str, Any]]:
        with self.db.session() as session:
            scope = TenantScope(session, self.tenant_id)
            project = self._project(scope, project_slug)
            filenames = {d.filename for d in scope.documents(project.id)}
            rows = scope.replace_evaluation_questions(
                project.id, validate(questions, filenames), self.actor
            )
            scope.audit(
                self.actor,
                "evaluation_set.replaced",
                project.slug,
                {
                    "questions": len(rows),
                    "refuse": sum(r.expect == "refuse" for r in rows),
                },
            )
            return [as_dict(r) for r in rows]

    def clear(self, project_slug: str) -> None:
        with self.db.session() as session:
            scope = TenantScope(session, self.tenant_id)
            project = self._project(scope, project_slug)
            removed = len(scope.evaluation_questions(project.id))
            scope.replace_evaluation_questions(project.id, [], self.actor)
            scope.audit(self.actor, "evaluation_set.cleared", project.slug, {"questions": removed})
