"""Hybrid retrieval over a project's chunks: lexical BM25 (the `bm25s` package, with our own
`tokenize` and stopwords) fused with dense all-MiniLM-L6-v2 cosine similarity, stored per
version in the object store, with a calibrated low-confidence signal to refuse instead of
guessing.

API (for serving and evaluation):

- `load_index(store, key_or_manifest) -> HybridIndex`: the index a manifest key names
  (`indexes/<version>/manifest.json`, what the `retrieval_index` asset returns as `index_key`),
  a manifest dict, or the asset's output dict itself. `latest_index_key(store)` is the key of the
  project's newest index (None before the first build).
- `HybridIndex.retrieve(question, k=3) -> list[HybridRetrieved]`, best first;
  `retrieve_many(questions, k=3)` embeds the questions in one batch. `HybridRetrieved` is a
  `grounding.Retrieved` (`chunk`, `score` = the fused score, `citation()`), so
  `grounded_messages` takes the hits as they are; its citation also carries `lexical` (BM25, on
  the same scale as `lexical.BM25Index`) and `dense` (cosine).
- `confidence(hits) -> float` in [0, 1], `is_confident(hits, threshold=CONFIDENCE_THRESHOLD)
  -> bool`; the index's own `confidence(question_or_hits)` and `is_confident(question_or_hits,
  threshold)` also take the question. Below the threshold: refuse rather than answer.
- `build_index(chunks, previous=None, embed=None) -> HybridIndex`, `save_index(store, index)
  -> manifest key`, `set_latest(store, manifest_key)`: what the asset does.

Fusion (`HybridIndex.scores`): a convex combination of two absolute scores,

    fused = ALPHA x coverage + (1 - ALPHA) x cosine,  ALPHA = 0.6

where coverage is BM25 divided by its ceiling for the question (every content term matched with
saturated frequency: sum of idf x (k1 + 1), a term no chunk holds counting with the highest
idf), i.e. the IDF-weighted share of the question found in the chunk, in [0, 1). Unlike
per-question min-max (BM25 / max BM25), a chunk matching one stray word of a paraphrased
question does not get the full lexical weight, and fused scores compare across questions.
Measured by `bench/retrieval.py` on the demo corpus (`sample_data/acme-handbook`: 93 chunks of
256 tokens, 10 documents), recall of the gold document at 1 / at 3:

| questions                                  | old BM25    | bm25s       | dense       | hybrid      |
|--------------------------------------------|-------------|-------------|-------------|-------------|
| generated, every split (214)               | 0.991/1.000 | 0.991/1.000 | 0.921/0.981 | 0.991/1.000 |
| generated, gold split documents (75)       | 1.000/1.000 | 1.000/1.000 | 0.987/1.000 | 1.000/1.000 |
| generated, document name removed (214)     | 0.939/0.981 | 0.939/0.981 | 0.832/0.907 | 0.935/0.977 |
| hand-written paraphrases (40)              | 0.650/0.800 | 0.650/0.800 | 0.900/0.925 | 0.925/0.950 |

(bm25s equals our BM25 score for score.) ALPHA = 0.6 is the smallest weight at which the hybrid
matches BM25 on the generated questions, and the best on the paraphrases (0.875-0.9 at 0.5 and
0.7; 0.725 at 0.8): the best mean recall@1 over the sets of the grid. Min-max normalisation at
its best weight (0.3) loses 0.02-0.04 at recall@1 on each set; reciprocal-rank fusion (k=60)
0.02-0.18. The cost is the question's embedding: ~12 ms a question one at a time (2-3 ms in
`retrieve_many` batches) on 2 idle CPU cores, against ~0.07 ms for BM25 alone.

Confidence (`confidence`): 0.7 x the best cosine among the hits (clipped at 0) + 0.3 x their
best coverage. A question the documents answer shares meaning, and usually rare words, with
one chunk; an off-topic one at most a stray word (France, in the office directory). Calibration
(`bench/retrieval.py`, `confidence` section, k=3):

- answerable (the 214 generated and 40 hand-written questions): minimum 0.135, 5th percentile
  0.271, median 0.522;
- off-topic, 20 used to set the threshold (medicine, finance, trivia, cooking, ...): maximum
  0.221 ("What is the capital of France?"), median 0.111; 20 more written afterwards, some
  sharing a word with the documents (passport, router): maximum 0.215;

`CONFIDENCE_THRESHOLD = 0.24`, just above every off-topic question: all 40 are refused, and
97.7% of the generated questions (100% of the gold split's), 95% of the paraphrases pass (at
k=1: 96.7%, 98.7%, 90%). Those below are definitions of everyday words ("What does public
mean?") and paraphrases sharing no rare word with their chunk ("Can I have a second job on the
side?"). Each part alone, its threshold set the same way: the best cosine (0.27) passes 94.9% of
the generated questions (98.7% of the gold split's) and 97.5% of the paraphrases; coverage
(0.29) 90.2% and 22.5%. The signal says whether retrieval found related text, not whether
that text holds the answer: an in-domain question the documents do not answer can pass.

Storage, under the project's prefix, one immutable folder per version (`index_version`: a hash
of the model name, the format and every chunk record, so the same chunks give the same
version):

    indexes/<version>/chunks.jsonl      the chunks, with their provenance, in row order
    indexes/<version>/embeddings.npy    float32, n x 384, L2-normalised rows
    indexes/<version>/hashes.json       sha256 of each row's embedded text
    indexes/<version>/manifest.json     written last: counts, embedded vs reused, model,
                                        fusion and threshold, sha256 of the three files
    indexes/latest.json                 {"index_key", "index_version"}, written after it

`build_index` embeds only the texts whose sha256 the previous version did not hold (with the
same model); BM25 is rebuilt each time (milliseconds).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from assets.retrieval.grounding import Retrieved
from assets.retrieval.lexical import tokenize

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
INDEX_FORMAT = "hybrid-v1"
ALPHA = 0.6
CONFIDENCE_DENSE_WEIGHT = 0.7
CONFIDENCE_THRESHOLD = 0.24
K1, B = 1.5, 0.75
INDEX_PREFIX = "indexes"
LATEST_KEY = f"{INDEX_PREFIX}/latest.json"

Embed = Callable[[Sequence[str]], np.ndarray]


# --- texts and hashes ------------------------------------------------------------------------


def index_text(chunk: dict) -> str:
    """What both halves index: the heading path, then the text (as `GroundingIndex` does)."""
    return " ".join(chunk.get("heading") or []) + "\n" + chunk["text"]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_hashes(chunks: Sequence[dict]) -> list[str]:
    """The sha256 of each chunk's embedded text: the key under which embeddings are reused."""
    return [text_sha256(index_text(c)) for c in chunks]


def index_version(chunks: Sequence[dict], model: str = MODEL_NAME) -> str:
    """Deterministic: the same chunk records (text and provenance) and model, the same version."""
    digest = hashlib.sha256(json.dumps([INDEX_FORMAT, model]).encode())
    for c in chunks:
        digest.update(hashlib.sha256(json.dumps(c, sort_keys=True).encode()).digest())
    return digest.hexdigest()[:16]


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """MiniLM embeddings (n x 384, L2-normalised float32), from the packaged model, on CPU."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    from assets.evaluation.metrics import embedder

    out = embedder().encode(
        list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.ascontiguousarray(out, dtype=np.float32)


# --- lexical half ----------------------------------------------------------------------------


class LexicalIndex:
    """BM25 (Lucene IDF, k1=1.5, b=0.75) by `bm25s` over our tokens. Scores are multiplied by
    k1 + 1, which `bm25s` leaves out, so they equal `lexical.BM25Index`'s; a query term counts
    once however often it is repeated, as there."""

    def __init__(self, texts: Sequence[str], k1: float = K1, b: float = B) -> None:
        import bm25s

        self.size = len(texts)
        self.k1 = k1
        corpus = [tokenize(t) for t in texts]
        self.terms = [set(tokens) for tokens in corpus]
        self.df: Counter[str] = Counter(t for terms in self.terms for t in terms)
        self.model: Any = None
        if any(corpus):
            self.model = bm25s.BM25(k1=k1, b=b, method="lucene")
            self.model.index(corpus, show_progress=False)

    def idf(self, term: str) -> float:
        """Lucene's IDF (as `bm25s` and `BM25Index`); a term no chunk has gets the highest."""
        df = self.df.get(term, 0)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def ceiling(self, query: str) -> float:
        """The BM25 score no chunk reaches: every content term of the query (known or not)
        matched with saturated term frequency, sum of idf x (k1 + 1)."""
        return sum(self.idf(t) for t in set(tokenize(query))) * (self.k1 + 1)

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        if self.model is None:
            return out
        ids = self.model.get_tokens_ids(list(dict.fromkeys(tokenize(query))))
        if not ids:
            return out
        return self.model.get_scores(ids) * np.float32(self.k1 + 1)

    def coverage(self, query: str, scores: np.ndarray | None = None) -> np.ndarray:
        """BM25 over its ceiling, in [0, 1): the IDF-weighted share of the question's content
        terms that a chunk holds (with BM25's saturation and length normalisation). 0 for a
        question of stopwords only."""
        ceiling = self.ceiling(query)
        if scores is None:
            scores = self.scores(query)
        if ceiling <= 0:
            return np.zeros(self.size, dtype=np.float32)
        return (scores / np.float32(ceiling)).astype(np.float32)


# --- hits and confidence ---------------------------------------------------------------------


@dataclass(frozen=True)
class HybridRetrieved(Retrieved):
    """A retrieved chunk: `score` is the fused score, `lexical` the BM25 score (the scale of
    `lexical.BM25Index`), `coverage` BM25 over its ceiling (`LexicalIndex.coverage`), `dense`
    the cosine similarity of the question's and the chunk's embeddings."""

    lexical: float = 0.0
    coverage: float = 0.0
    dense: float = 0.0

    def citation(self) -> dict:
        return {
            **super().citation(),
            "lexical": round(self.lexical, 4),
            "dense": round(self.dense, 4),
        }


def confidence(hits: Sequence[HybridRetrieved]) -> float:
    """How sure retrieval is that the hits answer the question, in [0, 1]:
    CONFIDENCE_DENSE_WEIGHT x the best cosine (clipped at 0) + the rest x the best lexical
    coverage, over the hits given (k=3 is what the threshold was calibrated on; k=1 is a little
    stricter). 0 without hits. See the module docstring for the calibration."""
    if not hits:
        return 0.0
    dense = max(0.0, max(h.dense for h in hits))
    lexical = max(0.0, max(h.coverage for h in hits))
    w = CONFIDENCE_DENSE_WEIGHT
    return float(min(1.0, w * dense + (1 - w) * lexical))


def is_confident(hits: Sequence[HybridRetrieved], threshold: float = CONFIDENCE_THRESHOLD) -> bool:
    """False: retrieval found nothing that looks like an answer; refuse instead of guessing."""
    return confidence(hits) >= threshold


def fuse(coverage: np.ndarray, dense: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """alpha x lexical coverage (BM25 over its ceiling) + (1 - alpha) x cosine."""
    return (alpha * coverage + (1 - alpha) * dense).astype(np.float32)


class Scores(NamedTuple):
    """Every chunk's scores for one question."""

    fused: np.ndarray
    lexical: np.ndarray
    coverage: np.ndarray
    dense: np.ndarray


# --- shared passages ---------------------------------------------------------------------------

_HUB_MIN_WORDS = 8


def paragraph_key(text: str) -> str:
    return " ".join(text.lower().split())


def duplicate_hubs(chunks: Sequence[dict]) -> dict[str, int]:
    """Per document id, the number of other documents that hold one of its paragraphs (of at
    least _HUB_MIN_WORDS words) verbatim."""
    holders: dict[str, set[str]] = {}
    for c in chunks:
        for paragraph in c["text"].split("\n\n"):
            if len(paragraph.split()) >= _HUB_MIN_WORDS and not paragraph.lstrip().startswith("#"):
                holders.setdefault(paragraph_key(paragraph), set()).add(c["document_id"])
    shared: dict[str, set[str]] = {}
    for documents in holders.values():
        if len(documents) > 1:
            for d in documents:
                shared.setdefault(d, set()).update(documents - {d})
    return {d: len(others) for d, others in shared.items()}


# --- the index -------------------------------------------------------------------------------


class HybridIndex:
    """Chunks, their embeddings and a BM25 index over the same texts.

    `embeddings` is n x 384, L2-normalised float32, row i for `chunks[i]`; `embed` turns
    questions into such rows (MiniLM by default). `embedded`/`reused` say how `build_index` got
    the rows; `manifest` is set once the index is saved or loaded."""

    def __init__(
        self,
        chunks: Sequence[dict],
        embeddings: np.ndarray,
        *,
        hashes: Sequence[str] | None = None,
        model: str = MODEL_NAME,
        alpha: float = ALPHA,
        embed: Embed | None = None,
        embedded: int = 0,
        reused: int = 0,
        manifest: dict | None = None,
    ) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(chunks):
            raise ValueError(
                f"embeddings must be {len(chunks)} x d, one row per chunk, not {embeddings.shape}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        self.chunks = list(chunks)
        self.embeddings = embeddings
        self.hashes = list(hashes) if hashes is not None else chunk_hashes(self.chunks)
        if len(self.hashes) != len(self.chunks):
            raise ValueError("one hash per chunk")
        self.model = model
        self.alpha = alpha
        self.embed: Embed = embed or embed_texts
        self.embedded = embedded
        self.reused = reused
        self.manifest = manifest
        self.lexical = LexicalIndex([index_text(c) for c in self.chunks])
        self._hubs: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def document_hubs(self) -> dict[str, int]:
        """Per document, how many other documents repeat one of its paragraphs word for word
        (computed once). Manuals include shared text (the reference of every setting in one
        page and each command's own settings in its page): among copies of a passage, the
        document that shares with the most others is the reference the rest include."""
        if self._hubs is None:
            self._hubs = duplicate_hubs(self.chunks)
        return self._hubs

    @property
    def version(self) -> str:
        return index_version(self.chunks, self.model)

    def scores(self, question: str, query_embedding: np.ndarray | None = None) -> Scores:
        """Every chunk's fused, BM25, coverage and cosine scores for the question."""
        if query_embedding is None:
            query_embedding = self.embed([question])[0]
        dense = self.embeddings @ np.asarray(query_embedding, dtype=np.float32)
        lexical = self.lexical.scores(question)
        coverage = self.lexical.coverage(question, lexical)
        return Scores(fuse(coverage, dense, self.alpha), lexical, coverage, dense)

    def retrieve(self, question: str, k: int = 3) -> list[HybridRetrieved]:
        """The k best chunks for the question by fused score, best first (ties: index order).
        Always k hits (fewer only in a smaller index): ask `is_confident` whether to use them."""
        return self.retrieve_many([question], k)[0]

    def retrieve_many(self, questions: Sequence[str], k: int = 3) -> list[list[HybridRetrieved]]:
        """`retrieve` for each question, the questions embedded in one batch."""
        if not self.chunks or k <= 0 or not questions:
            return [[] for _ in questions]
        embedded = self.embed(list(questions))
        out = []
        for question, row in zip(questions, embedded, strict=True):
            s = self.scores(question, row)
            order = np.lexsort((np.arange(len(s.fused)), -s.fused))[:k]
            out.append(
                [
                    HybridRetrieved(
                        self.chunks[j],
                        float(s.fused[j]),
                        lexical=float(s.lexical[j]),
                        coverage=float(s.coverage[j]),
                        dense=float(s.dense[j]),
                    )
                    for j in order
                ]
            )
        return out

    def confidence(self, question_or_hits: str | Sequence[HybridRetrieved], k: int = 3) -> float:
        """`confidence` of the hits given, or of the question's k best."""
        hits = (
            self.retrieve(question_or_hits, k)
            if isinstance(question_or_hits, str)
            else question_or_hits
        )
        return confidence(hits)

    def is_confident(
        self,
        question_or_hits: str | Sequence[HybridRetrieved],
        threshold: float = CONFIDENCE_THRESHOLD,
        k: int = 3,
    ) -> bool:
        return self.confidence(question_or_hits, k) >= threshold


# --- building, saving, loading -----------------------------------------------------------


@dataclass
class LoadedIndex:
    """A stored index's arrays as read (checked against the manifest's sha256s), before the
    BM25 half is built: what `build_index` needs from the previous version."""

    manifest: dict
    chunks: list[dict]
    hashes: list[str]
    embeddings: np.ndarray
    model: str = field(init=False)

    def __post_init__(self) -> None:
        self.model = self.manifest.get("model", MODEL_NAME)


def build_index(
    chunks: Sequence[dict],
    previous: LoadedIndex | HybridIndex | None = None,
    embed: Embed | None = None,
    *,
    model: str = MODEL_NAME,
    alpha: float = ALPHA,
) -> HybridIndex:
    """The index of `chunks`: rows of texts that `previous` (the same model) embedded are
    copied, only the others are embedded (each distinct text once)."""
    embed = embed or embed_texts
    hashes = chunk_hashes(chunks)
    known: dict[str, np.ndarray] = {}
    if previous is not None and previous.model == model:
        for h, row in zip(previous.hashes, previous.embeddings, strict=True):
            known.setdefault(h, row)
    missing: dict[str, str] = {}
    for h, c in zip(hashes, chunks, strict=True):
        if h not in known and h not in missing:
            missing[h] = index_text(c)
    fresh = embed(list(missing.values())) if missing else None
    if fresh is not None:
        fresh = np.asarray(fresh, dtype=np.float32)
        if fresh.shape[0] != len(missing):
            raise ValueError(f"embed returned {fresh.shape[0]} rows for {len(missing)} texts")
        known.update(zip(missing, fresh, strict=True))
    dims = next(iter(known.values())).shape[0] if known else DIMENSIONS
    rows = (
        np.stack([known[h] for h in hashes]).astype(np.float32)
        if hashes
        else np.zeros((0, dims), dtype=np.float32)
    )
    reused = sum(h not in missing for h in hashes)
    return HybridIndex(
        chunks,
        rows,
        hashes=hashes,
        model=model,
        alpha=alpha,
        embed=embed,
        embedded=len(hashes) - reused,
        reused=reused,
    )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_key(version: str) -> str:
    return f"{INDEX_PREFIX}/{version}/manifest.json"


def save_index(store: Any, index: HybridIndex, extra: dict | None = None) -> str:
    """Write the index under `indexes/<version>/` (the manifest last) and return the manifest's
    key. A version already stored is left as it is (the folder is immutable). `store` is a
    `ProjectStore`; `extra` goes into the manifest (the dataset version, for example)."""
    from assets.dataset.export import to_jsonl

    version = index.version
    key = manifest_key(version)
    if store.exists(key):
        index.manifest = store.get_json(key)
        return key
    prefix = f"{INDEX_PREFIX}/{version}"
    files = {
        "chunks": ("chunks.jsonl", to_jsonl(index.chunks)),
        "embeddings": ("embeddings.npy", _npy(index.embeddings)),
        "hashes": ("hashes.json", json.dumps(index.hashes).encode()),
    }
    for name, data in files.values():
        store.put_bytes(f"{prefix}/{name}", data)
    manifest = {
        "format": INDEX_FORMAT,
        "index_version": version,
        "model": index.model,
        "dimensions": int(index.embeddings.shape[1]),
        "chunks": len(index),
        "documents": len({c["document_id"] for c in index.chunks}),
        "embedded": index.embedded,
        "reused": index.reused,
        "fusion": {
            "alpha": index.alpha,
            "lexical": "bm25 / ceiling",
            "dense": "cosine",
            "bm25": {"k1": K1, "b": B, "idf": "lucene", "package": "bm25s"},
        },
        "confidence_threshold": CONFIDENCE_THRESHOLD,
        "confidence_dense_weight": CONFIDENCE_DENSE_WEIGHT,
        "files": {
            what: {"key": f"{prefix}/{name}", "sha256": _sha256(data), "bytes": len(data)}
            for what, (name, data) in files.items()
        },
        **(extra or {}),
    }
    store.put_json(key, manifest)
    index.manifest = manifest
    return key


def set_latest(store: Any, key: str) -> None:
    """Point `indexes/latest.json` at a saved index (after its manifest is written)."""
    manifest = store.get_json(key)
    store.put_json(LATEST_KEY, {"index_key": key, "index_version": manifest["index_version"]})


def latest_index_key(store: Any) -> str | None:
    """The manifest key of the project's newest index, or None before the first one."""
    if not store.exists(LATEST_KEY):
        return None
    return store.get_json(LATEST_KEY)["index_key"]


def _manifest(store: Any, key_or_manifest: str | dict) -> dict:
    if isinstance(key_or_manifest, dict):
        if "index_key" in key_or_manifest and "files" not in key_or_manifest:
            return store.get_json(key_or_manifest["index_key"])
        return key_or_manifest
    return store.get_json(key_or_manifest)


def read_index(store: Any, key_or_manifest: str | dict) -> LoadedIndex:
    """A stored index's chunks, hashes and embeddings; ValueError when a file does not match
    the manifest's sha256 or the arrays do not agree."""
    from assets.dataset.export import from_jsonl

    manifest = _manifest(store, key_or_manifest)
    if manifest.get("format") != INDEX_FORMAT:
        raise ValueError(f"unknown index format {manifest.get('format')!r}")
    data = {}
    for what, info in manifest["files"].items():
        raw = store.get_bytes(info["key"])
        if _sha256(raw) != info["sha256"]:
            raise ValueError(f"index file {info['key']} does not match its manifest's sha256")
        data[what] = raw
    chunks = from_jsonl(data["chunks"])
    hashes = json.loads(data["hashes"])
    embeddings = np.load(io.BytesIO(data["embeddings"]), allow_pickle=False)
    if not (len(chunks) == len(hashes) == embeddings.shape[0] == manifest["chunks"]):
        raise ValueError(
            f"index {manifest['index_version']}: {len(chunks)} chunks, {len(hashes)} hashes and "
            f"{embeddings.shape[0]} embeddings; the manifest says {manifest['chunks']}"
        )
    return LoadedIndex(manifest, chunks, hashes, embeddings.astype(np.float32, copy=False))


def load_index(store: Any, key_or_manifest: str | dict, embed: Embed | None = None) -> HybridIndex:
    """The `HybridIndex` stored under a manifest key (or given its manifest, or the asset's
    output dict), ready to `retrieve`."""
    loaded = read_index(store, key_or_manifest)
    manifest = loaded.manifest
    return HybridIndex(
        loaded.chunks,
        loaded.embeddings,
        hashes=loaded.hashes,
        model=loaded.model,
        alpha=float(manifest.get("fusion", {}).get("alpha", ALPHA)),
        embed=embed,
        embedded=int(manifest.get("embedded", 0)),
        reused=int(manifest.get("reused", 0)),
        manifest=manifest,
    )
