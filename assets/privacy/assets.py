"""pii_screened_documents: personal data found with Presidio and handled by the project's
policy (redact, block or allow) before any text reaches the dataset."""

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import dagster as dg
import msgspec
from dagster import AssetExecutionContext

from assets.privacy.screening import (
    SCREENING_RULES_VERSION,
    Screened,
    ScreeningConfig,
    screen_texts,
)
from assets.project import invalid_setting, project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource
from resources.project_settings import InvalidSetting, ProjectSettings

SCREEN_VERSION = "pii-v2"


def screening_config(
    settings: ProjectSettings | Mapping[str, Any], stage_name: str = "pii_screened_documents"
) -> ScreeningConfig:
    """The project's policy, custom recognisers, allow-list (`pii_allow_terms`), entity types
    (`pii_entities`, None for the defaults) and a version that changes when any of them, or the
    screener's rules, do. Stored settings (a mapping) that do not load fail `stage_name`
    saying which setting to fix."""
    try:
        if not isinstance(settings, ProjectSettings):
            settings = ProjectSettings.load(settings)
        custom = settings.custom_recognizers()
        allow_terms = settings.allow_terms()
        entities = settings.entities()
    except InvalidSetting as exc:
        raise invalid_setting(stage_name, exc) from exc
    basis = json.dumps(
        [
            SCREEN_VERSION,
            SCREENING_RULES_VERSION,
            settings.pii_policy,
            # As stored: a recogniser's default score and context are left out.
            msgspec.to_builtins(settings.pii_recognizers),
            sorted(term.casefold() for term in allow_terms),
            None if entities is None else sorted(entities),
        ],
        sort_keys=True,
    )
    return ScreeningConfig(
        policy=settings.pii_policy,
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
