"""Near duplicates: MinHash signatures of word 3-shingles, found through an LSH index."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable
from functools import cache

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from assets.normalization.normalize import normalize_text
from resources.project_settings import DEFAULT_NEAR_DUP_THRESHOLD as DEFAULT_THRESHOLD

SHINGLE_SIZE = 3
DEFAULT_NUM_PERM = 128
DEFAULT_SEED = 1
# (false positive, false negative) weights for the band layout. Every LSH candidate is
# verified against the estimated Jaccard, so a false positive costs one signature
# comparison while a false negative is a duplicate that slips into the training set.
# At 0.8 and 128 permutations datasketch's default (0.5, 0.5) gives 9 bands of 13 rows,
# which surfaces only 40% of the pairs sitting at exactly 0.8; (0.05, 0.95) gives
# 16 bands of 8 rows and 95%.
DEFAULT_WEIGHTS = (0.05, 0.95)

# Hash values carry no trace of how they were made, so everything that shapes them is
# pinned in the payload and checked on load: signatures made another way would be
# compared with today's as if they were the same kind and give meaningless similarities.
_MAGIC = b"PTNEAR\x00\x01"
_FORMAT = "privatune.near-dedupe"
_VERSION = 1
_SCHEME = "affine32"
_HASHFUNC = "sha1_32"
_SHINGLES = "word-3/nfkc-casefold/v1"
_DTYPE = np.dtype("<u4")
_LENGTH = struct.Struct(">I")
_DIGEST_SIZE = 32
_MAX_NUM_PERM = 4096
_BATCH = 8192

_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def _words(text: str) -> list[str]:
    # The same words as normalize.word_count: each CJK character is one, since those
    # scripts put no spaces between words.
    canonical = normalize_text(text).casefold()
    return _WORD.findall(_CJK_CHAR.sub(r" \g<0> ", canonical))


def shingles(text: str) -> set[str]:
    """Word 3-shingles of the normalised, casefolded text; a text shorter than three
    words is one shingle of the words it has, an empty text none."""
    words = _words(text)
    if len(words) < SHINGLE_SIZE:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE_SIZE]) for i in range(len(words) - SHINGLE_SIZE + 1)}


def exact_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' shingle sets (two empty texts count as identical)."""
    sa, sb = shingles(a), shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


@cache
def _empty_minhash(num_perm: int, seed: int) -> MinHash:
    # Drawing the permutations dominates the cost of a fresh MinHash; copies share them.
    return MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME)


def _signature_of(items: Iterable[str], num_perm: int, seed: int) -> LeanMinHash:
    minhash = _empty_minhash(num_perm, seed).copy()
    encoded = [item.encode("utf-8") for item in items]
    # update_batch materialises a shingles x num_perm matrix; in slices, a book-length
    # document stays at a few MiB.
    for start in range(0, len(encoded), _BATCH):
        minhash.update_batch(encoded[start : start + _BATCH])
    return LeanMinHash(minhash)


def signature(text: str, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED) -> LeanMinHash:
    """MinHash of the text's word 3-shingles."""
    if not 2 <= num_perm <= _MAX_NUM_PERM:
        raise ValueError(f"num_perm must be between 2 and {_MAX_NUM_PERM}, got {num_perm}")
    return _signature_of(shingles(text), num_perm, seed)


@cache
def _band_layout(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int]:
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    except ValueError:
        # With the arguments checked by the caller, the one refusal left is datasketch's
        # optimiser choosing a single band (thresholds near 1.0); two halves find every
        # pair whose signatures agree that closely.
        return 2, num_perm // 2
    return lsh.b, lsh.r


class NearDuplicateIndex:
    """Documents' MinHash signatures, queryable for those whose estimated Jaccard
    similarity with a text reaches the threshold.

    The estimate errs by about sqrt(J(1 - J) / num_perm), 0.035 at 0.8 with 128
    permutations, so a pair just above the threshold is missed about as often as one
    just below is reported. A `margin` lowers the cut on the estimate to catch those;
    callers that can fetch a candidate's text then confirm it with `exact_jaccard`.

    Persist it with `dumps` / `loads`; the format carries only ids, parameters and hash
    values, so a payload from an untrusted store cannot execute anything.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        num_perm: int = DEFAULT_NUM_PERM,
        *,
        margin: float = 0.0,
        seed: int = DEFAULT_SEED,
        weights: tuple[float, float] = DEFAULT_WEIGHTS,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if not 0.0 <= margin < threshold:
            raise ValueError(f"margin must be in [0, threshold), got {margin}")
        if not 2 <= num_perm <= _MAX_NUM_PERM:
            raise ValueError(f"num_perm must be between 2 and {_MAX_NUM_PERM}, got {num_perm}")
        fp_weight, fn_weight = (float(w) for w in weights)
        if fp_weight < 0.0 or fn_weight < 0.0 or fp_weight + fn_weight <= 0.0:
            raise ValueError(f"weights must be non-negative and not both zero, got {weights}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.num_perm = int(num_perm)
        self.seed = int(seed)
        # datasketch wants the pair to sum to exactly 1.0.
        fp_weight /= fp_weight + fn_weight
        self.weights = (fp_weight, 1.0 - fp_weight)
        self.bands, self.rows = _band_layout(self.cutoff, self.num_perm, self.weights)
        self._lsh = MinHashLSH(num_perm=self.num_perm, params=(self.bands, self.rows))
        self._signatures: dict[str, LeanMinHash] = {}

    @property
    def cutoff(self) -> float:
        """The lowest estimated similarity a match may have: the threshold less the margin."""
        return self.threshold - self.margin

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._signatures

    def ids(self) -> list[str]:
        """The indexed document ids, in insertion order."""
        return list(self._signatures)

    def __repr__(self) -> str:
        return (
            f"NearDuplicateIndex(documents={len(self)}, threshold={self.threshold}, "
            f"margin={self.margin}, num_perm={self.num_perm}, bands={self.bands}, rows={self.rows})"
        )

    def signature(self, text: str) -> LeanMinHash:
        """The text's signature with this index's parameters."""
        return signature(text, self.num_perm, self.seed)

    def add(self, doc_id: str, text: str) -> None:
        """Index a document; adding an id again replaces its signature, so a rerun is harmless."""
        self._insert(doc_id, self.signature(text))

    def remove(self, doc_id: str) -> None:
        """Drop a document from the index; KeyError if it is not there."""
        if doc_id not in self._signatures:
            raise KeyError(doc_id)
        self._lsh.remove(doc_id)
        del self._signatures[doc_id]

    def query(self, text: str) -> list[tuple[str, float]]:
        """Indexed documents whose estimated Jaccard similarity with the text reaches the
        cutoff (the threshold, less any margin), most similar first (ties by id)."""
        return self._matches(self.signature(text))

    def find_duplicate(self, doc_id: str, text: str) -> tuple[str, float] | None:
        """The indexed document (other than `doc_id` itself) most similar to the text, with
        its estimated Jaccard similarity, if that reaches the cutoff."""
        for match in self._matches(self.signature(text)):
            if match[0] != doc_id:
                return match
        return None

    def dumps(self) -> bytes:
        """A compact, versioned payload: magic, a JSON header, the signatures as one
        little-endian uint32 matrix (a row per document), and a SHA-256 of all before it."""
        doc_ids = list(self._signatures)
        matrix = np.empty((len(doc_ids), self.num_perm), dtype=_DTYPE)
        for row, doc_id in enumerate(doc_ids):
            matrix[row] = self._signatures[doc_id].hashvalues
        header = json.dumps(
            {
                "format": _FORMAT,
                "version": _VERSION,
                "threshold": self.threshold,
                "margin": self.margin,
                "num_perm": self.num_perm,
                "seed": self.seed,
                "weights": list(self.weights),
                "scheme": _SCHEME,
                "hashfunc": _HASHFUNC,
                "shingles": _SHINGLES,
                "dtype": _DTYPE.str,
                "doc_ids": doc_ids,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        body = b"".join([_MAGIC, _LENGTH.pack(len(header)), header, matrix.tobytes()])
        return body + hashlib.sha256(body).digest()

    @classmethod
    def loads(cls, data: bytes) -> NearDuplicateIndex:
        """Rebuild an index from `dumps` output, with the parameters it was built with;
        ValueError for anything else, truncated or corrupted."""
        data = bytes(data)
        prefix = len(_MAGIC) + _LENGTH.size
        if len(data) < prefix + _DIGEST_SIZE or not data.startswith(_MAGIC):
            raise ValueError("not a near-duplicate index payload")
        body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
        if hashlib.sha256(body).digest() != digest:
            raise ValueError("near-duplicate index payload is corrupted (checksum mismatch)")
        (header_size,) = _LENGTH.unpack_from(body, len(_MAGIC))
        if prefix + header_size > len(body):
            raise ValueError("near-duplicate index header is truncated")
        try:
            header = json.loads(body[prefix : prefix + header_size].decode("utf-8"))
        except ValueError as exc:
            raise ValueError(f"near-duplicate index header is not valid JSON: {exc}") from exc
        threshold, margin, num_perm, seed, weights, doc_ids = _checked_header(header)
        matrix = np.frombuffer(body, dtype=_DTYPE, offset=prefix + header_size)
        if matrix.size != len(doc_ids) * num_perm:
            raise ValueError(
                f"near-duplicate index holds {matrix.size} hash values, expected "
                f"{len(doc_ids)} documents x {num_perm}"
            )
        index = cls(threshold, num_perm, margin=margin, seed=seed, weights=weights)
        for doc_id, hashvalues in zip(doc_ids, matrix.reshape(len(doc_ids), num_perm), strict=True):
            index._insert(doc_id, LeanMinHash(seed=seed, hashvalues=hashvalues, scheme=_SCHEME))
        return index

    def _insert(self, doc_id: str, sig: LeanMinHash) -> None:
        if not isinstance(doc_id, str):
            raise TypeError(f"doc_id must be a str, got {type(doc_id).__name__}")
        if doc_id in self._signatures:
            self._lsh.remove(doc_id)
        self._lsh.insert(doc_id, sig, check_duplication=False)
        self._signatures[doc_id] = sig

    def _matches(self, sig: LeanMinHash) -> list[tuple[str, float]]:
        scored = [
            (doc_id, sig.jaccard(self._signatures[doc_id])) for doc_id in self._lsh.query(sig)
        ]
        matches = [(doc_id, sim) for doc_id, sim in scored if sim >= self.cutoff]
        matches.sort(key=lambda match: (-match[1], match[0]))
        return matches


def _checked_header(
    header: object,
) -> tuple[float, float, int, int, tuple[float, float], list[str]]:
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise ValueError("not a near-duplicate index payload")
    if header.get("version") != _VERSION:
        raise ValueError(f"unsupported near-duplicate index version {header.get('version')!r}")
    for key, expected in (
        ("scheme", _SCHEME),
        ("hashfunc", _HASHFUNC),
        ("shingles", _SHINGLES),
        ("dtype", _DTYPE.str),
    ):
        if header.get(key) != expected:
            raise ValueError(
                f"near-duplicate index was built with {key}={header.get(key)!r}, "
                f"this code uses {expected!r}; rebuild it from the documents"
            )
    threshold, margin = header.get("threshold"), header.get("margin")
    num_perm, seed = header.get("num_perm"), header.get("seed")
    weights, doc_ids = header.get("weights"), header.get("doc_ids")
    if not _is_number(threshold) or not 0.0 < threshold <= 1.0:
        raise ValueError(f"bad threshold {threshold!r} in near-duplicate index")
    if not _is_number(margin) or not 0.0 <= margin < threshold:
        raise ValueError(f"bad margin {margin!r} in near-duplicate index")
    if not _is_int(num_perm) or not 2 <= num_perm <= _MAX_NUM_PERM:
        raise ValueError(f"bad num_perm {num_perm!r} in near-duplicate index")
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"bad seed {seed!r} in near-duplicate index")
    if (
        not isinstance(weights, list)
        or len(weights) != 2
        or not all(_is_number(w) and 0.0 <= w <= 1.0 for w in weights)
    ):
        raise ValueError(f"bad weights {weights!r} in near-duplicate index")
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) for d in doc_ids):
        raise ValueError("bad document ids in near-duplicate index")
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("duplicate document ids in near-duplicate index")
    return (
        float(threshold),
        float(margin),
        num_perm,
        seed,
        (float(weights[0]), float(weights[1])),
        doc_ids,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
