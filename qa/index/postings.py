"""Immutable BM25 postings of a block of rows, with the per-term bounds that let a query skip postings.

Nothing corpus-wide (IDF, average length) is baked into a segment: :class:`qa.index.bm25.BM25Index` scores over a list
of them with statistics of the live rows computed at query time. Arrays are saved as ``.npy`` files and memory-mapped
on load, so a large index is paged in by the OS instead of being read into Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BOUND_FILES", "MAX_TOKEN_CHARS", "BM25Segment"]

# Longer tokens (URLs, long Latin words) are cut to this many characters so the vocabulary is a compact
# fixed-width array; two tokens sharing their first 32 characters are one term, which costs nothing in practice.
MAX_TOKEN_CHARS = 32

_SEGMENT_FILES = ("vocab", "indptr", "rows", "tf", "lengths")
# Per-term bounds for pruning, written since they were added; a segment saved without them gets them on load.
BOUND_FILES = ("max_tf.npy", "min_len.npy")


@dataclass(frozen=True, slots=True, eq=False)
class BM25Segment:
    """Postings of a block of rows (local rows 0..n-1): for term ``vocab[j]``, postings ``indptr[j]:indptr[j+1]``
    of ``rows`` (ascending) and ``tf``; ``lengths[r]`` is row r's token count.

    ``max_tf[j]`` and ``min_len[j]`` are the largest term frequency and the shortest row among term j's postings
    (deleted rows included). BM25's term score grows with tf and shrinks with length, so whatever IDF and average
    length the live rows give at query time, no posting of term j scores more than one with ``max_tf[j]`` in a
    row of ``min_len[j]`` tokens: the bound that lets a query skip postings (:meth:`qa.index.bm25.BM25Index.search`).
    Computed from the postings when not given.
    """

    vocab: np.ndarray
    indptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray
    max_tf: np.ndarray | None = None
    min_len: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.max_tf is None or self.min_len is None:
            max_tf, min_len = _term_bounds(self.indptr, self.rows, self.tf, self.lengths)
            object.__setattr__(self, "max_tf", max_tf)
            object.__setattr__(self, "min_len", min_len)

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

    def save(self, directory: Path, only_bounds: bool = False) -> None:
        """Write the arrays as ``.npy`` files in ``directory``; ``only_bounds``: just :data:`BOUND_FILES`."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in (() if only_bounds else _SEGMENT_FILES) + tuple(f[:-4] for f in BOUND_FILES):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> BM25Segment:
        """Load a saved segment; arrays are memory-mapped unless ``mmap`` is False.

        A segment saved before the per-term bounds existed has them computed here, from all its postings.

        Raises:
            FileNotFoundError: a file is missing. ValueError: the arrays do not fit together.
        """
        mode = "r" if mmap else None
        names = [*_SEGMENT_FILES, *(f[:-4] for f in BOUND_FILES if (directory / f).is_file())]
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode=mode, allow_pickle=False) for name in names}
        if (arrays["indptr"].size != arrays["vocab"].size + 1 or arrays["rows"].size != arrays["tf"].size
                or int(arrays["indptr"][-1]) != arrays["rows"].size
                or any(arrays[n].size != arrays["vocab"].size for n in ("max_tf", "min_len") if n in arrays)):
            raise ValueError(f"BM25 segment in {directory} is inconsistent (vocab, postings, pointers and bounds "
                             "differ)")
        return cls(**arrays)


def _term_bounds(indptr: np.ndarray, rows: np.ndarray, tf: np.ndarray, lengths: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per term, the largest term frequency and the shortest row among its postings (every term has one)."""
    if indptr.size <= 1:
        return np.zeros(0, np.uint16), np.zeros(0, np.int32)
    starts = np.asarray(indptr[:-1])
    max_tf = np.maximum.reduceat(np.asarray(tf), starts).astype(np.uint16)
    min_len = np.minimum.reduceat(np.asarray(lengths)[np.asarray(rows)], starts).astype(np.int32)
    return max_tf, min_len
