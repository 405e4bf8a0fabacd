"""Incremental onboarding: the cost of adding one document to a 500-document project, beside
onboarding the whole project from scratch, in the same run (prints JSON).

    .venv/bin/python bench/incremental.py [--documents 500]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    "policy employee manager leave request approval office travel expense budget contract "
    "security password laptop training review salary pension benefit holiday schedule meeting "
    "project customer supplier invoice payment report deadline team department process system"
).split()


def document(i: int, rng: random.Random) -> bytes:
    lines = [f"# Procedure {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}", ""]
    for p in range(6):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24)))
        lines.append(
            f"Rule {i}.{p}: the {rng.choice(WORDS)} must be approved within {rng.randint(2, 60)} days. "
            f"{sentence.capitalize()}."
        )
        lines.append("")
    return "\n".join(lines).encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=500)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="privatune-bench-"))
    os.environ["PRIVATUNE_HOME"] = str(home)

    import dagster as dg

    from pipelines.definitions import all_assets, all_checks
    from resources.antivirus import Antivirus
    from resources.clamd_local import start_clamd
    from resources.database import Database
    from resources.io_manager import ObjectStoreManifestIOManager
    from resources.model_runtime import ModelRuntime
    from resources.object_store import ObjectStoreResource
    from resources.repository import TenantScope, create_tenant

    selection = [
        "raw_documents",
        "normalized_documents",
        "deduped_documents",
        "pii_screened_documents",
    ]
    db = Database(url=f"sqlite:///{home}/app.db")
    db.migrate()
    store = ObjectStoreResource(backend="local", root=str(home / "objects"))
    pstore = store.project("bench", "docs")
    with db.session() as session:
        tenant, _ = create_tenant(session, "bench", "Bench")
        project_id = TenantScope(session, tenant.id).create_project("docs", "Docs", {}).id
    tenant_id = tenant.id

    def add(name: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        pstore.put_bytes(f"raw/{digest}", data)
        with db.session() as session:
            TenantScope(session, tenant_id).add_document(
                project_id,
                filename=name,
                sha256=digest,
                size_bytes=len(data),
                object_key=pstore.key(f"raw/{digest}"),
                meta={},
            )

    rng = random.Random(7)
    for i in range(args.documents):
        add(f"procedure-{i:04d}.md", document(i, rng))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant_project", ["bench__docs"])
    with start_clamd(home / "clamd") as clamd:
        resources = {
            "db": db,
            "store": store,
            "runtime": ModelRuntime(),
            "antivirus": Antivirus(address=clamd.address, required=True),
            "io_manager": ObjectStoreManifestIOManager(store=store),
        }

        def run() -> float:
            started = time.perf_counter()
            result = dg.materialize(
                [*all_assets, *all_checks],
                selection=selection,
                partition_key="bench__docs",
                instance=instance,
                resources=resources,
            )
            assert result.success
            return time.perf_counter() - started

        full = run()
        add("procedure-new.md", document(args.documents, rng))
        incremental = run()
    print(
        json.dumps(
            {
                "benchmark": "incremental onboarding (scan, extract, normalise, dedupe, PII)",
                "documents": args.documents,
                "full_seconds": round(full, 2),
                "add_one_seconds": round(incremental, 2),
                "ratio": round(incremental / full, 4),
                "target_ratio_at_most": 0.05,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
