"""eval_report: the candidate adapter vs the base model vs the active deployment on the frozen
gold split, with the promotion gate that blocks deployment_package; deployment_evaluation: the
active deployment re-evaluated on schedule, regressions recorded."""

import dagster as dg
from dagster import AssetExecutionContext

from assets.deployment.artifacts import adapter_ref
from assets.evaluation.report import (
    DEFAULT_MARGINS,
    failure_order,
    gate,
    promotion_verdict,
    render_html,
)
from assets.evaluation.run import System, eval_questions, evaluate
from assets.failures import StageFailure
from assets.project import project_handle, record_check_failure, stage
from assets.retrieval.answering import Answering
from assets.retrieval.hybrid import load_index
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.project_settings import ProjectSettings
from resources.settings import get_settings

GATE_CHECK = "promotion_gate"


class EvalConfig(dg.Config):
    """Evaluation knobs."""

    max_questions: int | None = None
    refusal_questions: int = 12
    probe_questions: int = 16
    max_new_tokens: int = 64
    top_k: int = 3
    latency_samples: int = 3


def _limit(config: EvalConfig) -> int | None:
    return (
        config.max_questions
        if config.max_questions is not None
        else get_settings().eval_max_questions
    )


def _cache():
    return get_settings().home / "cache" / "adapters"


def promotion_settings(settings: ProjectSettings) -> tuple[dict[str, float], float | None]:
    """The gate's margin per metric (the project's over the defaults) and latency budget."""
    promotion = settings.promotion
    margins = {**DEFAULT_MARGINS, **(promotion.margins or {})}
    return margins, promotion.latency_budget_p95_s


def _metadata(summary: dict, recall: float, questions: int, html_key: str) -> dict:
    return {
        "questions": questions,
        "retrieval_recall": round(recall, 3),
        **{f"{s}_{k}": round(float(v), 3) for s, m in summary.items() for k, v in m.items()},
        "report_html": html_key,
    }


def _run_evaluation(handle, config, runtime, splits, retrieval_index, systems) -> tuple:
    """The project's questions (the gold split, its own evaluation set, refusal probes)
    answered by each system through the index: (questions, result)."""
    index = load_index(handle.store, retrieval_index["index_key"])
    answering = Answering.for_project(index, handle.settings, config.top_k)
    with handle.scope() as scope:
        own = [
            {"question": q.question, "answer": q.answer, "document": q.document, "expect": q.expect}
            for q in scope.evaluation_questions(handle.project_id)
        ]
        documents = {d.filename: d.id for d in scope.documents(handle.project_id)}
    questions = eval_questions(
        handle.store,
        splits,
        _limit(config),
        config.refusal_questions,
        project_set=own,
        documents=documents,
        probes=config.probe_questions,
        seed=handle.settings.split_seed,
    )
    result = evaluate(
        runtime.serving(),
        answering,
        questions,
        systems,
        handle.settings,
        config.max_new_tokens,
        config.latency_samples,
    )
    return questions, result


def _report(handle, manifest, splits, questions, result, systems, summary, gate_block, rows):
    return {
        "tenant": handle.tenant,
        "project": handle.project,
        "adapter_version": manifest["adapter_version"],
        "base_model": manifest["base_model"],
        "dataset_version": splits["dataset_version"],
        "questions": sum(q["kind"] == "answer" for q in questions),
        "refusal_questions": sum(q["kind"] != "answer" for q in questions),
        "question_sets": {
            name: {
                "answerable": sum(
                    q["kind"] == "answer" and q.get("source") == name for q in questions
                ),
                "refusal": sum(
                    q["kind"] != "answer" and q.get("source") == name for q in questions
                ),
            }
            for name in ("generated", "project", "builtin")
        },
        "summary_by_set": result.get("summary_by_set", {}),
        "retrieval_recall": result["retrieval_recall"],
        "systems": {s.name: s.label for s in systems},
        "summary": summary,
        "gate": gate_block,
        "rows": rows,
    }


def _record(handle, context, scope, prefix: str, report: dict, verdict, **fields):
    """The report's JSON and HTML stored, and its `evaluations` row added in `scope` (returned:
    the caller adds its events in the same transaction)."""
    handle.store.put_json(f"{prefix}/report.json", report)
    handle.store.put_text(f"{prefix}/report.html", render_html(report))
    return scope.add_evaluation(
        handle.project_id,
        adapter_version=report["adapter_version"],
        dataset_version=report["dataset_version"],
        questions=report["questions"],
        summary=report["summary"],
        passed=verdict.passed,
        reasons=verdict.reasons,
        report_key=f"{prefix}/report.json",
        dagster_run_id=context.run.run_id,
        **fields,
    )


@dg.asset(
    partitions_def=tenant_project,
    group_name="evaluation",
    kinds={"pytorch"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="eval_report",
            blocking=True,
            description=(
                "Promotion gate: the candidate is not worse than the active deployment (before "
                "the first deployment: the base model it was trained from, unless "
                "promotion.compare_first_with_base is off) by more than the project's margins "
                "on the key metrics, on the generated gold split and on the project's own "
                "evaluation set, nor over its latency budget. Blocks deployment_package."
            ),
        )
    ],
)
def eval_report(
    context: AssetExecutionContext,
    config: EvalConfig,
    db: Database,
    store: ObjectStoreResource,
    runtime: ModelRuntime,
    splits: dict,
    adapter: dict,
    retrieval_index: dict,
):
    """Candidate adapter vs base model vs active deployment on the gold split and refusal probes, all through the same retrieval index: exact, fuzzy and semantic match, refusal accuracy, unsupported claims, citations, latency; JSON + HTML with plots; the promotion gate."""
    handle = project_handle(context, db, store)
    prefix = f"reports/{adapter['adapter_version']}"
    margins, budget = promotion_settings(handle.settings)
    first_vs_base = handle.settings.promotion.first_with_base()
    with stage(context, handle, "eval_report") as figures:
        systems = [
            System("base", None, adapter["base_model"]),
            System(
                "candidate",
                adapter_ref(handle.store, adapter, "transformers", _cache()),
                f"adapter {adapter['adapter_version']}",
            ),
        ]
        with handle.scope() as scope:
            active = scope.active_deployment(handle.project_id)
            active_manifest = dict(active.manifest) if active is not None else None
            active_version = active.version if active is not None else None
        if active_manifest and active_manifest.get("adapter_version") != adapter["adapter_version"]:
            systems.append(
                System(
                    "active",
                    adapter_ref(handle.store, active_manifest, "transformers", _cache()),
                    f"deployment v{active_version}, adapter {active_manifest['adapter_version']}",
                )
            )
        questions, result = _run_evaluation(
            handle, config, runtime, splits, retrieval_index, systems
        )
        summary = result["summary"]
        reference = "active" if "active" in summary else "base"
        verdict = promotion_verdict(
            summary, margins, budget, first_vs_base, result.get("summary_by_set"), result["rows"]
        )
        report = _report(
            handle,
            adapter,
            splits,
            questions,
            result,
            systems,
            summary,
            {**verdict.to_dict(), "margins": margins, "latency_budget_p95_s": budget},
            failure_order(result["rows"], "candidate"),
        )
        report.update(
            index_version=retrieval_index.get("index_version"), active_deployment=active_version
        )
        with handle.scope() as scope:
            evaluation = _record(
                handle,
                context,
                scope,
                prefix,
                report,
                verdict,
                kind="candidate",
                deployment_version=None,
                compared_with=(
                    f"deployment v{active_version}" if reference == "active" else "base model"
                ),
            )
            evaluation_id = evaluation.id
            if not verdict.passed:
                record_check_failure(
                    handle,
                    context,
                    GATE_CHECK,
                    StageFailure(
                        "eval_report",
                        f"promotion gate blocked deployment (vs {reference}): "
                        + "; ".join(verdict.reasons),
                        "the new adapter is not deployed and the current deployment keeps "
                        "serving. Look at the report (GET /v1/projects/"
                        f"{handle.project}/evaluations/{evaluation_id}/report) for the questions "
                        "it got wrong; improve the training data (review or add documents) or "
                        "the hyperparameters and run again, or widen the project's promotion "
                        "margins / latency budget (settings.promotion) if the gate is too strict",
                        code="promotion_blocked",
                        details={
                            "evaluation_id": evaluation_id,
                            "compared_with": reference,
                            "reasons": verdict.reasons,
                            "deltas": verdict.deltas,
                        },
                    ),
                    kind="promotion_blocked",
                    scope=scope,
                    evaluation_id=evaluation_id,
                    reasons=verdict.reasons,
                )
            # Every verdict is audited: passed ones deploy the adapter next.
            scope.audit(
                "dagster",
                "promotion.blocked" if not verdict.passed else "promotion.passed",
                f"{handle.project}:{adapter['adapter_version']}",
                {
                    "reasons": verdict.reasons,
                    "compared_with": reference,
                    "evaluation_id": evaluation_id,
                    "run_id": context.run.run_id,
                },
            )
        figures.update(
            questions=report["questions"],
            gate="passed" if verdict.passed else "blocked: " + "; ".join(verdict.reasons),
            **{f"{s}_semantic": round(m["semantic_similarity"], 3) for s, m in summary.items()},
        )
    html_key = handle.store.key(f"{prefix}/report.html")
    yield dg.Output(
        {
            "report_key": f"{prefix}/report.json",
            "html_key": f"{prefix}/report.html",
            "adapter_version": adapter["adapter_version"],
            "evaluation_id": evaluation_id,
            "questions": report["questions"],
            "summary": summary,
            "gate": report["gate"],
            "retrieval_recall": result["retrieval_recall"],
        },
        metadata={
            **_metadata(summary, result["retrieval_recall"], report["questions"], html_key),
            "gate": "passed" if verdict.passed else "blocked",
            "compared_with": reference,
        },
    )
    yield dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"candidate within the margins of {reference}"
            if verdict.passed
            else f"blocked (vs {reference}): " + "; ".join(verdict.reasons)
        ),
        metadata={
            "compared_with": reference,
            "reasons": dg.MetadataValue.json(verdict.reasons),
            **{f"delta_{k}": v for k, v in verdict.deltas.items()},
        },
    )


class ReevalConfig(EvalConfig):
    """The scheduled re-evaluation's knobs (the same as the candidate's)."""


@dg.asset(
    partitions_def=tenant_project,
    group_name="evaluation",
    kinds={"pytorch"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_regression",
            asset="deployment_evaluation",
            description=(
                "The active deployment, re-evaluated on today's gold split, is within the "
                "project's margins of the figures it was promoted with."
            ),
        )
    ],
)
def deployment_evaluation(
    context: AssetExecutionContext,
    config: ReevalConfig,
    db: Database,
    store: ObjectStoreResource,
    runtime: ModelRuntime,
    splits: dict,
    retrieval_index: dict,
):
    """The active deployment re-evaluated (nightly, and on demand) on the current gold split and index, beside the base model; a drop beyond the project's margins from its promotion figures is recorded as a regression."""
    handle = project_handle(context, db, store)
    margins, budget = promotion_settings(handle.settings)
    with stage(context, handle, "deployment_evaluation") as figures:
        with handle.scope() as scope:
            active = scope.active_deployment(handle.project_id)
            if active is None:
                raise StageFailure(
                    "deployment_evaluation",
                    f"{handle.tenant}/{handle.project} has no active deployment to re-evaluate",
                    "run the pipeline until an adapter passes the promotion gate (POST "
                    f"/v1/projects/{handle.project}/runs), or activate an earlier deployment "
                    f"(POST /v1/projects/{handle.project}/deployments/{{version}}/activate); "
                    "the nightly re-evaluation needs one",
                    code="no_active_deployment",
                )
            manifest, version = dict(active.manifest), active.version
        systems = [
            System("base", None, manifest["base_model"]),
            System(
                "active",
                adapter_ref(handle.store, manifest, "transformers", _cache()),
                f"deployment v{version}, adapter {manifest['adapter_version']}",
            ),
        ]
        questions, result = _run_evaluation(
            handle, config, runtime, splits, retrieval_index, systems
        )
        summary = dict(result["summary"])
        promoted = (manifest.get("metrics") or {}).get("candidate")
        if promoted:
            summary["at_promotion"] = promoted
            verdict = gate(summary, "active", "at_promotion", margins, budget)
        else:  # a deployment from before promotion figures were recorded
            verdict = gate(summary, "active", "base", margins, budget, result["rows"])
        prefix = f"reports/deployments/v{version}/{context.run.run_id[:8]}"
        report = _report(
            handle,
            manifest,
            splits,
            questions,
            result,
            systems,
            summary,
            {**verdict.to_dict(), "margins": margins, "latency_budget_p95_s": budget},
            failure_order([{**r, "candidate": r["active"]} for r in result["rows"]], "candidate"),
        )
        report["active_deployment"] = version
        with handle.scope() as scope:
            _record(
                handle,
                context,
                scope,
                prefix,
                report,
                verdict,
                kind="scheduled",
                deployment_version=version,
                compared_with=verdict.compared_with,
            )
            if not verdict.passed:
                scope.audit(
                    "dagster",
                    "deployment.regressed",
                    f"{handle.project}@{version}",
                    {"reasons": verdict.reasons, "run_id": context.run.run_id},
                )
        figures.update(version=version, regressed=not verdict.passed)
    yield dg.Output(
        {
            "deployment_version": version,
            "report_key": f"{prefix}/report.json",
            "passed": verdict.passed,
        },
        metadata={
            **_metadata(
                result["summary"],
                result["retrieval_recall"],
                report["questions"],
                handle.store.key(f"{prefix}/report.html"),
            ),
            "deployment_version": version,
            "regressed": not verdict.passed,
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_regression",
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(verdict.reasons) or f"deployment v{version} holds its figures",
        metadata={f"delta_{k}": v for k, v in verdict.deltas.items()},
    )
