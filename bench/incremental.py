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
import subprocess
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


def paragraphs(i: int, rng: random.Random, count: int) -> list[str]:
    out = []
    for p in range(count):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24)))
        out.append(
            f"Rule {i}.{p}: the {rng.choice(WORDS)} must be approved within {rng.randint(2, 60)} days. "
            f"{sentence.capitalize()}."
        )
    return out


def document(i: int, rng: random.Random, size: int) -> tuple[str, bytes]:
    """A one-to-two page procedure, as Markdown, PDF or DOCX in turn (a realistic mix)."""
    title = f"Procedure {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}"
    body = paragraphs(i, rng, size)
    if i % 3 == 0:
        return f"procedure-{i:04d}.md", "\n\n".join([f"# {title}", *body]).encode()
    if i % 3 == 1:
        import pymupdf

        pdf = pymupdf.open()
        for start in range(0, len(body), 12):
            page = pdf.new_page()
            text = "\n\n".join(([title] if start == 0 else []) + body[start : start + 12])
            page.insert_textbox(pymupdf.Rect(50, 50, 545, 800), text, fontsize=9)
        return f"procedure-{i:04d}.pdf", pdf.tobytes()
    import io

    import docx

    word = docx.Document()
    word.add_heading(title, level=1)
    for paragraph in body:
        word.add_paragraph(paragraph)
    buffer = io.BytesIO()
    word.save(buffer)
    return f"procedure-{i:04d}.docx", buffer.getvalue()


SELECTION = ["raw_documents", "normalized_documents", "deduped_documents", "pii_screened_documents"]


def materialize_once(home: Path, clamd: str) -> float:
    """One onboarding run in this process, as a Dagster run worker would do it; seconds."""
    started = time.perf_counter()
    import dagster as dg

    from pipelines.definitions import all_assets, all_checks
    from resources.antivirus import Antivirus
    from resources.database import Database
    from resources.io_manager import ObjectStoreManifestIOManager
    from resources.model_runtime import ModelRuntime
    from resources.object_store import ObjectStoreResource

    store = ObjectStoreResource(backend="local", root=str(home / "objects"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tenant_project", ["bench__docs"])
    result = dg.materialize(
        [*all_assets, *all_checks],
        selection=SELECTION,
        partition_key="bench__docs",
        instance=instance,
        resources={
            "db": Database(url=f"sqlite:///{home}/app.db"),
            "store": store,
            "runtime": ModelRuntime(),
            "antivirus": Antivirus(address=clamd, required=True),
            "io_manager": ObjectStoreManifestIOManager(store=store),
        },
    )
    assert result.success
    return time.perf_counter() - started


def cold_run(home: Path, clamd: str) -> float:
    """A run in a fresh process (Dagster starts one per run): imports and model loads included."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--once", str(home), "--clamd", clamd],
        check=True,
        env={**os.environ, "PRIVATUNE_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument(
        "--paragraphs", type=int, default=24, help="paragraphs per document (~4 KB of text)"
    )
    parser.add_argument("--once", help=argparse.SUPPRESS)
    parser.add_argument("--clamd", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(materialize_once(Path(args.once), args.clamd))
        return 0
    home = Path(tempfile.mkdtemp(prefix="privatune-bench-"))
    os.environ["PRIVATUNE_HOME"] = str(home)

    from resources.clamd_local import start_clamd
    from resources.database import Database
    from resources.object_store import ObjectStoreResource
    from resources.repository import TenantScope, create_tenant

    db = Database(url=f"sqlite:///{home}/app.db")
    db.migrate()
    pstore = ObjectStoreResource(backend="local", root=str(home / "objects")).project(
        "bench", "docs"
    )
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
        add(*document(i, rng, args.paragraphs))
    with start_clamd(home / "clamd") as clamd:
        full_cold = cold_run(home, clamd.address)
        add(*document(args.documents + 1, rng, args.paragraphs))
        one_cold = cold_run(home, clamd.address)
        nothing_new = cold_run(home, clamd.address)
        # The same again inside one warm process, to separate fixed start-up costs.
        add(*document(args.documents + 2, rng, args.paragraphs))
        materialize_once(home, clamd.address)
        add(*document(args.documents + 3, rng, args.paragraphs))
        one_warm = materialize_once(home, clamd.address)
    print(
        json.dumps(
            {
                "benchmark": "incremental onboarding (scan, extract, normalise, dedupe, PII)",
                "documents": args.documents,
                "paragraphs_per_document": args.paragraphs,
                "formats": "a third each Markdown, PDF, DOCX",
                "full_seconds_fresh_process": round(full_cold, 2),
                "add_one_seconds_fresh_process": round(one_cold, 2),
                "no_change_seconds_fresh_process": round(nothing_new, 2),
                "ratio_fresh_process": round(one_cold / full_cold, 4),
                "add_one_seconds_warm_process": round(one_warm, 2),
                "ratio_warm_process": round(one_warm / full_cold, 4),
                "target_ratio_at_most": 0.05,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
