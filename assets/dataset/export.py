"""Dataset files: JSONL in chat format and Parquet, both loadable with `datasets.load_dataset`."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

# One fixed schema, so every split (even an empty one) has the same columns.
SCORE_FIELDS = ("groundedness", "answer_length", "question_quality", "overall")


def to_jsonl(rows: Sequence[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def from_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def export_row(example: dict[str, Any]) -> dict[str, Any]:
    """The exported record: chat messages first, then provenance and scores."""
    scores = example.get("scores") or {}
    return {
        "id": example["id"],
        "messages": [{"role": m["role"], "content": m["content"]} for m in example["messages"]],
        "question": example["question"],
        "answer": example["answer"],
        "kind": example["kind"],
        "generator": example["generator"],
        "document_id": example.get("document_id"),
        "split": example["split"],
        "citations": list(example.get("citations") or []),
        "status": example.get("status", "auto_accepted"),
        "scores": {k: scores.get(k) for k in SCORE_FIELDS},
    }


def to_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("messages", pa.list_(message)),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("kind", pa.string()),
            ("generator", pa.string()),
            ("document_id", pa.string()),
            ("split", pa.string()),
            ("citations", pa.list_(pa.string())),
            ("status", pa.string()),
            ("scores", pa.struct([(k, pa.float64()) for k in SCORE_FIELDS])),
        ]
    )
    table = pa.Table.from_pylist(list(rows), schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
