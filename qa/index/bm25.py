"""BM25 keyword index over passages: immutable segments of postings, statistics computed at query time.

An index is a list of segments, each covering a block of consecutive rows, plus a set of deleted rows. A segment
holds, per term, the rows it occurs in and how often (a CSC matrix in plain numpy arrays), and each row's length.
Nothing corpus-wide (IDF, average length) is baked into a segment, so adding passages appends a segment built from
those passages alone and deleting marks rows dead: neither touches the existing postings, and every score is still
exactly Lucene's BM25 over the live rows. Segment arrays are saved as ``.npy`` files and memory-mapped on load, so
a large index is paged in by the OS instead of being read into Python objects.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa.index.tokenize import TOKENIZER_NAMES, Tokenizer, create_tokenizer

__all__ = ["DEFAULT_B", "DEFAULT_K1", "DEFAULT_TOKENIZER", "BM25Index", "BM25Params", "BM25Segment"]

# Chosen on the dev set (32 answerable questions): CJK 1+2+3-grams with the stop list had the best
# MRR@10 on every passage chunking tried (sentence-packed 200-500 chars, sliding windows, paragraphs),
# 0-0.04 above 1+2-grams and above jieba words (which need a dictionary and lose on unseen terms).
# Trigrams act as cheap phrase matches: a 3-char overlap is much rarer than two separate bigrams.
DEFAULT_TOKENIZER = "char123"
# k1 sets term-frequency saturation, b the document-length normalisation. These are Lucene's defaults;
# on the dev set every k1 in {1.2, 1.5, 2.0} x b in {0.5, 0.75, 0.9} scored within 0.016 MRR@10 of them,
# i.e. at most one question moving between rank 1 and 2, so there is nothing to tune here.
DEFAULT_K1 = 1.5
DEFAULT_B = 0.75
# Longer tokens (URLs, long Latin words) are cut to this many characters so the vocabulary is a compact
# fixed-width array; two tokens sharing their first 32 characters are one term, which costs nothing in practice.
MAX_TOKEN_CHARS = 32

_META_FILE = "qa_bm25.json"
_FORMAT_VERSION = 2
_SEGMENT_FILES = ("vocab", "indptr", "rows", "tf", "lengths")


@dataclass(frozen=True, slots=True)
class BM25Params:
    """What is needed to rebuild the query side of an index: tokenizer name and BM25 parameters."""

    tokenizer_name: str = DEFAULT_TOKENIZER
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    n_docs: int = 0

    def __post_init__(self) -> None:
        if self.tokenizer_name not in TOKENIZER_NAMES:
            raise ValueError(
                f"unknown tokenizer {self.tokenizer_name!r}; allowed: {', '.join(TOKENIZER_NAMES)}"
            )
        if not (math.isfinite(self.k1) and 0.0 <= self.k1 <= 10.0):
            raise ValueError(f"k1={self.k1!r} is out of range; allowed: 0 <= k1 <= 10")
        if not (math.isfinite(self.b) and 0.0 <= self.b <= 1.0):
            raise ValueError(f"b={self.b!r} is out of range; allowed: 0 <= b <= 1")


def _terms(tokens: Iterable[str]) -> list[str]:
    return [t[:MAX_TOKEN_CHARS] for t in tokens if t]


@dataclass(frozen=True, slots=True, eq=False)
class BM25Segment:
    """Postings of a block of rows (local rows 0..n-1): for term ``vocab[j]``, postings ``indptr[j]:indptr[j+1]``
    of ``rows`` (ascending) and ``tf``; ``lengths[r]`` is row r's token count."""

    vocab: np.ndarray
    indptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_tokens(cls, token_lists: Iterable[Sequence[str]]) -> BM25Segment:
        """Build the postings of ``token_lists`` (one list per row, consumed one at a time)."""
        ids: dict[str, int] = {}
        term_parts: list[np.ndarray] = []
        lengths: list[int] = []
        for tokens in token_lists:
            # One small int array per row instead of a Counter: ~8x less memory than per-row dictionaries.
            row_ids = [ids.setdefault(t[:MAX_TOKEN_CHARS], len(ids)) for t in tokens if t]
            term_parts.append(np.array(row_ids, dtype=np.int32))
            lengths.append(len(row_ids))
        n_rows = len(lengths)
        lengths_arr = np.array(lengths, dtype=np.int32)
        if not ids:
            return cls(np.zeros(0, dtype="<U1"), np.zeros(1, np.int64), np.zeros(0, np.int32),
                       np.zeros(0, np.uint16), lengths_arr)
        terms = list(ids)
        vocab = np.array(sorted(terms))
        # rank[first-seen id] = position in the sorted vocabulary.
        rank = np.empty(len(terms), dtype=np.int64)
        rank[np.argsort(np.array(terms))] = np.arange(len(terms))
        # One sort of (term, row) keys gives the postings in order and, by counting repeats, the term frequencies.
        keys = rank[np.concatenate(term_parts)]
        del term_parts
        keys *= n_rows
        keys += np.repeat(np.arange(n_rows, dtype=np.int64), lengths_arr)
        keys, tf = np.unique(keys, return_counts=True)
        term_ids = keys // n_rows
        indptr = np.concatenate(([0], np.cumsum(np.bincount(term_ids, minlength=vocab.size)))).astype(np.int64)
        # Term frequencies fit in 16 bits (a passage repeating one term 65535 times is clipped): 6 bytes a posting.
        return cls(vocab, indptr, (keys % n_rows).astype(np.int32), np.minimum(tf, 65535).astype(np.uint16),
                   lengths_arr)

    def __len__(self) -> int:
        return int(self.lengths.size)

    @staticmethod
    def concat(segments: Sequence[BM25Segment]) -> BM25Segment:
        """One segment holding ``segments``' rows one block after the other (used to merge small segments)."""
        vocab = np.unique(np.concatenate([s.vocab for s in segments]))
        term_ids, rows, tfs = [], [], []
        offset = 0
        for s in segments:
            # Expand each segment's CSC columns into (merged term id, global row) pairs.
            local_terms = np.searchsorted(vocab, s.vocab)
            term_ids.append(np.repeat(local_terms, np.diff(s.indptr)))
            rows.append(np.asarray(s.rows, dtype=np.int64) + offset)
            tfs.append(np.asarray(s.tf))
            offset += len(s)
        term_all = np.concatenate(term_ids)
        order = np.argsort(term_all, kind="stable")
        indptr = np.concatenate(([0], np.cumsum(np.bincount(term_all, minlength=vocab.size)))).astype(np.int64)
        return BM25Segment(vocab, indptr, np.concatenate(rows)[order].astype(np.int32),
                           np.concatenate(tfs)[order].astype(np.uint16),
                           np.concatenate([np.asarray(s.lengths) for s in segments]).astype(np.int32))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _SEGMENT_FILES:
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> BM25Segment:
        """Load a saved segment; arrays are memory-mapped unless ``mmap`` is False.

        Raises:
            FileNotFoundError: a file is missing. ValueError: the arrays do not fit together.
        """
        mode = "r" if mmap else None
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
                  for name in _SEGMENT_FILES}
        segment = cls(**arrays)
        if (segment.indptr.size != segment.vocab.size + 1 or segment.rows.size != segment.tf.size
                or int(segment.indptr[-1]) != segment.rows.size):
            raise ValueError(f"BM25 segment in {directory} is inconsistent (vocab, postings and pointers differ)")
        return segment


class BM25Index:
    """BM25 over the live rows of a list of segments; results refer to global row numbers.

    Immutable: :meth:`with_segment`, :meth:`without_rows` and :meth:`merged` return new indexes that share the
    unchanged segments, so a reader holding the old index is never disturbed by a writer.
    """

    __slots__ = ("_alive", "_live", "_norm", "_offsets", "_params", "_tokenizer", "deleted", "segments")

    def __init__(self, segments: Sequence[BM25Segment], params: BM25Params,
                 deleted: Iterable[int] | np.ndarray = ()) -> None:
        self.segments: tuple[BM25Segment, ...] = tuple(segments)
        self._offsets = np.concatenate(([0], np.cumsum([len(s) for s in self.segments]))).astype(np.int64)
        total = int(self._offsets[-1])
        self.deleted: np.ndarray = np.unique(np.asarray(list(deleted) if not isinstance(deleted, np.ndarray)
                                                        else deleted, dtype=np.int64))
        if self.deleted.size and (self.deleted[0] < 0 or self.deleted[-1] >= total):
            raise ValueError(f"deleted rows must be in [0, {total}), got {self.deleted[0]}..{self.deleted[-1]}")
        self._params = replace(params, n_docs=total)
        self._tokenizer: Tokenizer = create_tokenizer(params.tokenizer_name)
        self._alive = np.ones(total, dtype=bool)
        self._alive[self.deleted] = False
        self._live = int(self._alive.sum())
        lengths = (np.concatenate([np.asarray(s.lengths, dtype=np.float32) for s in self.segments])
                   if self.segments else np.zeros(0, np.float32))
        avgdl = float(lengths[self._alive].mean()) if self._live else 1.0
        # The per-row length normalisation of BM25, so a query only multiplies and divides.
        self._norm = (params.k1 * (1.0 - params.b + params.b * lengths / max(avgdl, 1e-9))).astype(np.float32)

    @classmethod
    def build(
        cls,
        texts: list[str],
        tokenizer_name: str = DEFAULT_TOKENIZER,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> BM25Index:
        """Tokenize ``texts`` and build a one-segment index.

        Args:
            texts: the passages; row ``i`` of every result refers to ``texts[i]``.
            tokenizer_name: a name accepted by :func:`qa.index.tokenize.create_tokenizer`.
            k1: term-frequency saturation, in [0, 10].
            b: length normalisation, in [0, 1].

        Raises:
            ValueError: on an empty ``texts``, texts without a single token, or bad parameters.
        """
        params = BM25Params(tokenizer_name=tokenizer_name, k1=float(k1), b=float(b), n_docs=len(texts))
        if not texts:
            raise ValueError("texts is empty; need at least 1 text to build a BM25 index")
        segment = cls.segment_for(texts, tokenizer_name)
        if segment.vocab.size == 0:
            raise ValueError(f"none of the {len(texts)} texts has a token for tokenizer {tokenizer_name!r}")
        return cls([segment], params)

    @staticmethod
    def segment_for(texts: Sequence[str], tokenizer_name: str = DEFAULT_TOKENIZER) -> BM25Segment:
        """The segment for ``texts``, to append with :meth:`with_segment`."""
        tokenizer = create_tokenizer(tokenizer_name)
        return BM25Segment.from_tokens(tokenizer(t) for t in texts)

    def with_segment(self, segment: BM25Segment) -> BM25Index:
        """A new index with ``segment``'s rows appended after the current ones."""
        return BM25Index([*self.segments, segment], self._params, self.deleted)

    def without_rows(self, rows: Iterable[int]) -> BM25Index:
        """A new index in which ``rows`` no longer match anything."""
        return BM25Index(self.segments, self._params, np.concatenate([self.deleted, np.asarray(list(rows), np.int64)]))

    def merged(self, start: int, stop: int) -> BM25Index:
        """A new index in which segments ``start..stop-1`` are one segment (same rows, same scores)."""
        merged = BM25Segment.concat(self.segments[start:stop])
        return BM25Index([*self.segments[:start], merged, *self.segments[stop:]], self._params, self.deleted)

    @property
    def params(self) -> BM25Params:
        """Tokenizer name, k1, b and number of rows."""
        return self._params

    def __len__(self) -> int:
        """Rows, deleted ones included (the row space results refer to)."""
        return self._params.n_docs

    @property
    def live_count(self) -> int:
        return self._live

    def query_terms(self, query: str) -> Counter[str]:
        """The query's terms with how often each is asked (a term asked twice weighs twice, as in Lucene)."""
        return Counter(_terms(self._tokenizer(query)))

    def _postings(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live postings of ``terms`` across segments: (term position in ``terms``, global row, term frequency).

        Vectorized over the terms: one vocabulary lookup and one gather per segment, whatever the query length.
        """
        wanted = np.array(terms) if terms else np.zeros(0, dtype="<U1")
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for segment, offset in zip(self.segments, self._offsets):
            vocab = segment.vocab
            if vocab.size == 0 or wanted.size == 0:
                continue
            j = np.minimum(np.searchsorted(vocab, wanted), vocab.size - 1)
            found = np.flatnonzero(vocab[j] == wanted)
            if found.size == 0:
                continue
            starts, ends = segment.indptr[j[found]].tolist(), segment.indptr[j[found] + 1].tolist()
            # Contiguous slices are views of the (memory-mapped) postings: one copy, by the concatenation.
            seg_rows = np.concatenate([segment.rows[a:b] for a, b in zip(starts, ends)]).astype(np.int64)
            seg_rows += offset
            seg_tf = np.concatenate([segment.tf[a:b] for a, b in zip(starts, ends)]).astype(np.float32)
            parts.append((np.repeat(found, np.subtract(ends, starts)), seg_rows, seg_tf))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        term_of, rows, tf = (np.concatenate(x) for x in zip(*parts)) if len(parts) > 1 else parts[0]
        if self.deleted.size:
            keep = self._alive[rows]
            term_of, rows, tf = term_of[keep], rows[keep], tf[keep]
        return term_of, rows, tf

    def doc_freq(self, term: str) -> int:
        """Live rows containing ``term``."""
        return int(self._postings([term[:MAX_TOKEN_CHARS]])[1].size)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zeros for deleted rows and when no query term is known).

        Returns:
            float32 array of shape ``(len(self),)``; needed for score fusion.
        """
        counts = self.query_terms(query)
        term_of, rows, tf = self._postings(list(counts))
        if rows.size == 0:
            return np.zeros(len(self), dtype=np.float32)
        k1, n = self._params.k1, self._live
        df = np.bincount(term_of, minlength=len(counts)).astype(np.float64)
        # Lucene's idf, times how often the query asks the term.
        weight = np.log1p((n - df + 0.5) / (df + 0.5)) * np.fromiter(counts.values(), dtype=np.float64)
        # In place, in float32: this loop runs over every posting of the query's terms (millions at 100k rows).
        contributions = (weight * (k1 + 1.0)).astype(np.float32)[term_of]
        contributions *= tf
        denominator = self._norm[rows]
        denominator += tf
        contributions /= denominator
        summed = np.bincount(rows, weights=contributions, minlength=len(self))
        return summed.astype(np.float32)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(row, score)`` pairs, best first; rows scoring 0 are left out.

        Args:
            query: the question.
            k: maximum number of results, >= 1 (larger than the corpus is fine).

        Returns:
            Pairs sorted by descending score, ties by ascending row.
        """
        _check_k(k)
        return top_k(self.scores(query), k)

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[tuple[int, float]]]:
        """:meth:`search` for several queries."""
        _check_k(k)
        return [top_k(self.scores(q), k) for q in queries]

    def save(self, directory: Path) -> None:
        """Write the index to ``directory``: one sub-folder per segment plus ``qa_bm25.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for i, segment in enumerate(self.segments):
            segment.save(directory / f"segment-{i:04d}")
        meta = {"format_version": _FORMAT_VERSION, **asdict(self._params), "segments": len(self.segments),
                "deleted": self.deleted.tolist()}
        (directory / _META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        """Load an index written by :meth:`save` (segments memory-mapped).

        Raises:
            FileNotFoundError: if ``directory`` holds no saved index.
            ValueError: if the saved format version is not supported or the files disagree.
        """
        directory = Path(directory)
        meta_path = directory / _META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no BM25 index in {directory}: {_META_FILE} is missing")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = meta.pop("format_version", None)
        if version != _FORMAT_VERSION:
            raise ValueError(f"BM25 index format_version {version!r} in {meta_path}; supported: {_FORMAT_VERSION}")
        segments = [BM25Segment.load(directory / f"segment-{i:04d}") for i in range(int(meta.pop("segments")))]
        deleted = meta.pop("deleted")
        index = cls(segments, BM25Params(**meta), deleted)
        if len(index) != meta["n_docs"]:
            raise ValueError(f"{meta_path} says n_docs={meta['n_docs']} but the segments hold {len(index)} rows")
        return index

    def __repr__(self) -> str:
        p = self._params
        return (f"BM25Index(rows={p.n_docs}, live={self._live}, segments={len(self.segments)}, "
                f"tokenizer={p.tokenizer_name!r}, k1={p.k1}, b={p.b})")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is out of range; allowed: integer k >= 1")


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Top ``k`` positive scores as ``(row, score)``, best first, ties by row for determinism."""
    positive = np.flatnonzero(scores > 0)
    if positive.size == 0:
        return []
    if positive.size > k:
        # np.partition keeps this O(n) for large corpora; ties at the k-th score are all kept and the
        # lexsort below picks the lowest rows among them.
        kth = np.partition(scores[positive], positive.size - k)[positive.size - k]
        positive = positive[scores[positive] >= kth]
    order = np.lexsort((positive, -scores[positive]))[:k]
    return [(int(positive[i]), float(scores[positive[i]])) for i in order]
