"""pii_screened_documents: personal data found with Presidio and handled by the project's
policy (redact, block or allow) before any text reaches the dataset."""

import hashlib
import json
from collections import Counter

import dagster as dg
from dagster import AssetExecutionContext

from assets.failures import StageFailure
from assets.pii.recognizers import CustomRecognizer
from assets.privacy.screening import (
    SCREENING_RULES_VERSION,
    Screened,
    ScreeningConfig,
    screen_texts,
)
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource

SCREEN_VERSION = "pii-v2"
POLICIES = ("redact", "block", "allow")


def screening_config(settings: dict, stage_name: str = "pii_screened_documents") -> ScreeningConfig:
    """The project's policy, custom recognisers, allow-list (`pii_allow_terms`), entity types
    (`pii_entities`, None for the defaults) and a version that changes when any of them, or the
    screener's rules, do. A bad setting fails `stage_name` saying which setting to fix."""
    from assets.pii.recognizers import validate_allow_terms, validate_entities

    def bad(setting: str, problem: str) -> StageFailure:
        return StageFailure(
            stage_name,
            f"project setting {setting} is invalid: {problem}",
            f"PATCH /v1/projects/<project> with a valid settings.{setting}, then run again",
            code="invalid_setting",
            details={"setting": setting},
        )

    policy = settings.get("pii_policy") or "redact"
    if policy not in POLICIES:
        raise bad("pii_policy", f"{policy!r} is not one of {', '.join(POLICIES)}")
    try:
        custom = [CustomRecognizer.from_dict(r) for r in settings.get("pii_recognizers") or []]
    except ValueError as exc:
        raise bad("pii_recognizers", str(exc)) from exc
    try:
        allow_terms = validate_allow_terms(settings.get("pii_allow_terms"), "pii_allow_terms")
    except ValueError as exc:
        raise bad("pii_allow_terms", str(exc)) from exc
    try:
        entities = validate_entities(settings.get("pii_entities"), custom, "pii_entities")
    except ValueError as exc:
        raise bad("pii_entities", str(exc)) from exc
    basis = json.dumps(
        [
            SCREEN_VERSION,
            SCREENING_RULES_VERSION,
            policy,
            settings.get("pii_recognizers") or [],
            sorted(term.casefold() for term in allow_terms),
            None if entities is None else sorted(entities),
        ],
        sort_keys=True,
    )
    return ScreeningConfig(
        policy=policy,
        custom=tuple(custom),
        version=hashlib.sha256(basis.encode()).hexdigest()[:12],
        allow_terms=allow_terms,
        entities=entities,
    )


def _screen(
    context: AssetExecutionContext, texts: list[str], config: ScreeningConfig
) -> list[Screened]:
    """Screen in the PII worker process (loaded while the run worked); in this process if the
    worker fails. The same code screens either way (`screen_texts`)."""
    if not texts:
        return []
    from assets.pii.worker import PiiWorkerError, worker

    try:
        return worker().screen(
            texts, config.policy, list(config.custom), config.allow_terms, config.entities
        )
    except PiiWorkerError as exc:
        context.log.warning(f"PII worker failed ({exc}); screening in the run's process")
    return screen_texts(texts, config.policy, config.screener())


@dg.asset(partitions_def=tenant_project, group_name="privacy", kinds={"python"})
def pii_screened_documents(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    deduped_documents: dict,
) -> dict:
    """Personal data per document (Presidio + the project's own regex recognisers): redacted with typed placeholders, blocking the document, or allowed, by the project's policy."""
    handle = project_handle(context, db, store)
    config = screening_config(handle.settings, "pii_screened_documents")
    policy, custom, version = config.policy, config.custom, config.version
    entries, blocked, reused = [], 0, 0
    totals: Counter[str] = Counter()
    with stage(context, handle, "pii_screened_documents") as figures:
        with handle.scope() as scope:
            # Screened by an earlier run with this configuration: the database row has the outcome.
            known = {
                d.id: {"status": d.redaction_status, "summary": d.pii_summary or {}}
                for d in scope.documents(handle.project_id)
                if (d.meta or {}).get("screening") == version and d.redaction_status
            }
        pending = []
        for doc in deduped_documents["documents"]:
            key = f"screened/{doc['sha256']}.json"
            cached = known.get(doc["id"])
            if cached is not None:
                reused += 1
                pending.append((doc, key, cached))
            else:
                pending.append((doc, key, None))
        fresh = [(doc, key) for doc, key, cached in pending if cached is None]
        pages_of = {doc["id"]: handle.store.get_json(doc["key"])["pages"] for doc, _ in fresh}
        texts = [p["text"] for doc, _ in fresh for p in pages_of[doc["id"]]]
        outcomes = iter(_screen(context, texts, config))
        screened = {}
        for doc, key in fresh:
            pages, statuses, summary = [], [], Counter()
            for page in pages_of[doc["id"]]:
                outcome = next(outcomes)
                pages.append({"number": page["number"], "text": outcome.text})
                statuses.append(outcome.status)
                summary.update(outcome.summary)
            status = next((s for s in ("blocked", "redacted", "allowed") if s in statuses), "clean")
            result = {
                "version": version,
                "policy": policy,
                "status": status,
                "summary": dict(summary),
                "pages": pages,
            }
            handle.store.put_json(key, result)
            screened[doc["id"]] = result
        with handle.scope() as scope:
            rows = {d.id: d for d in scope.documents(handle.project_id)}
            for doc, key, cached in pending:
                result = cached or screened[doc["id"]]
                totals.update(result["summary"])
                row = rows.get(doc["id"])
                if row is not None:
                    row.redaction_status, row.pii_summary = result["status"], result["summary"]
                    row.meta = {**(row.meta or {}), "screening": version}
                    if result["status"] == "blocked":
                        row.status = "excluded"
                        found = ", ".join(f"{k} x{v}" for k, v in sorted(result["summary"].items()))
                        row.failure_reason = f"pii_blocked: the project's policy blocks documents with personal data ({found})"
                if result["status"] == "blocked":
                    blocked += 1
                    continue
                entries.append({**doc, "screened_key": key, "redaction_status": result["status"]})
        figures.update(documents=len(entries), blocked=blocked, reused=reused)
    context.add_output_metadata(
        {
            "policy": policy,
            "documents": len(entries),
            "blocked": blocked,
            "reused_from_cache": reused,
            "findings_by_type": dict(totals),
            "custom_recognizers": [r.name for r in custom],
            "allow_terms": len(config.allow_terms),
            "entities": ", ".join(config.entities) if config.entities is not None else "defaults",
        }
    )
    return {"documents": entries, "policy": policy, "version": version}
