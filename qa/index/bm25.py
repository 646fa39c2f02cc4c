"""BM25 keyword index over passages: immutable segments of postings, statistics computed at query time.

An index is a list of segments, each covering a block of consecutive rows, plus a set of deleted rows. A segment
holds, per term, the rows it occurs in and how often (a CSC matrix in plain numpy arrays), and each row's length.
Nothing corpus-wide (IDF, average length) is baked into a segment, so adding passages appends a segment built from
those passages alone and deleting marks rows dead: neither touches the existing postings, and every score is still
exactly Lucene's BM25 over the live rows. Segment arrays are saved as ``.npy`` files and memory-mapped on load, so
a large index is paged in by the OS instead of being read into Python objects (:mod:`qa.index.postings`).

A top-k search is pruned (MaxScore, :meth:`BM25Index.search`): per-term bounds kept with each segment tell which
postings can no longer change the top k, and those are not read; :meth:`BM25Index.scores` reads them all.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from qa.index.postings import BOUND_FILES, MAX_TOKEN_CHARS, BM25Segment
from qa.index.tokenize import TOKENIZER_NAMES, Tokenizer, create_tokenizer
from qa.index.topk import check_k, sorted_unique, top_k, top_of_rows

__all__ = ["BOUND_FILES", "DEFAULT_B", "DEFAULT_K1", "DEFAULT_TOKENIZER", "BM25Index", "BM25Params", "BM25Segment"]

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

# Below this many postings per row in the query's lists, scoring them all is faster than pruning (whose per-term
# steps cost more than reading a short list). 2.5 when each search allocated its per-row arrays; with them reused,
# pruning from 1 posting per row on cut the mean thread time per query at 1M rows by 14% (bench/README).
EXHAUSTIVE_BELOW = 1.0
# In the second phase a candidate is found in a posting list by binary search (~log2(list) cache misses each) unless
# the segment's candidates are more than 1/LOOKUP_READ_ABOVE of the list: then the list is read through once and
# each posting's row looked up in a row -> candidate map (one access each). 4 was faster than 16 or 64 at 1M rows.
LOOKUP_READ_ABOVE = 4
# Scratch arrays (one row each) kept per index for the next query; more concurrent queries allocate their own.
_SCRATCH_KEPT = 4

_META_FILE = "qa_bm25.json"
_FORMAT_VERSION = 2


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


class BM25Index:
    """BM25 over the live rows of a list of segments; results refer to global row numbers.

    Immutable: :meth:`with_segment`, :meth:`without_rows` and :meth:`merged` return new indexes that share the
    unchanged segments, so a reader holding the old index is never disturbed by a writer.
    """

    __slots__ = ("_alive", "_avgdl", "_dead_local", "_dead_terms", "_live", "_norm", "_offset_list", "_offsets",
                 "_params", "_postings_of", "_scratch", "_scratch_lock", "_terms_of", "_tokenizer", "deleted",
                 "segments")

    def __init__(self, segments: Sequence[BM25Segment], params: BM25Params,
                 deleted: Iterable[int] | np.ndarray = ()) -> None:
        self.segments: tuple[BM25Segment, ...] = tuple(segments)
        self._offsets = np.concatenate(([0], np.cumsum([len(s) for s in self.segments]))).astype(np.int64)
        self._offset_list: list[int] = self._offsets.tolist()
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
        self._avgdl = max(avgdl, 1e-9)
        self._norm = (params.k1 * (1.0 - params.b + params.b * lengths / self._avgdl)).astype(np.float32)
        # Plain views of the (memory-mapped) postings: slicing an np.memmap costs microseconds, a query slices
        # every term of every segment.
        self._postings_of = [(np.asarray(s.rows).view(np.ndarray), np.asarray(s.tf).view(np.ndarray))
                             for s in self.segments]
        self._terms_of = [tuple(np.asarray(a).view(np.ndarray) for a in (s.vocab, s.indptr, s.max_tf, s.min_len))
                          for s in self.segments]  # likewise for the plan's lookups (a memmap gather: ~1 us more)
        # Each segment's deleted rows, local and ascending (int32 like the postings' rows, so a search does not
        # convert a posting list to compare).
        bounds = np.searchsorted(self.deleted, self._offsets)
        self._dead_local = [(self.deleted[a:b] - off).astype(np.int32)
                            for a, b, off in zip(bounds[:-1], bounds[1:], self._offsets[:-1])]
        self._dead_terms: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.segments)
        self._scratch: list[_Scratch] = []
        self._scratch_lock = threading.Lock()

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
        return BM25Index([*self.segments, segment], self._params, self.deleted)._inherit(self)

    def without_rows(self, rows: Iterable[int]) -> BM25Index:
        """A new index in which ``rows`` no longer match anything."""
        deleted = np.concatenate([self.deleted, np.asarray(list(rows), np.int64)])
        return BM25Index(self.segments, self._params, deleted)._inherit(self)

    def merged(self, start: int, stop: int) -> BM25Index:
        """A new index in which segments ``start..stop-1`` are one segment (same rows, same scores)."""
        merged = BM25Segment.concat(self.segments[start:stop])
        return BM25Index([*self.segments[:start], merged, *self.segments[stop:]], self._params,
                         self.deleted)._inherit(self)

    def _inherit(self, old: BM25Index) -> BM25Index:
        """Take over ``old``'s deleted-row term counts of the segments whose deleted rows did not change."""
        position = {id(segment): i for i, segment in enumerate(old.segments)}
        for s, segment in enumerate(self.segments):
            i = position.get(id(segment))
            if i is not None and old._dead_terms[i] is not None and np.array_equal(old._dead_local[i],
                                                                                   self._dead_local[s]):
                self._dead_terms[s] = old._dead_terms[i]
        return self

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

    def _plan(self, query: str) -> _QueryPlan | None:
        """The query's terms with live postings, in the order both scoring paths add them (None: no such term).

        Per segment, one vocabulary lookup for all the terms; no posting is read except to count deleted rows.
        """
        counts = self.query_terms(query)
        if not counts or not self.segments:
            return None
        wanted = np.array(list(counts))
        shape = (len(self.segments), wanted.size)
        starts, ends, term_ids = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        max_tf, min_len = np.zeros(shape, np.float64), np.zeros(shape, np.float64)
        for s, (vocab, indptr, seg_max_tf, seg_min_len) in enumerate(self._terms_of):
            if vocab.size == 0:
                continue
            j = vocab.searchsorted(wanted)
            found = np.flatnonzero(vocab.take(j, mode="clip") == wanted)
            j = j[found]
            term_ids[s, found] = j
            starts[s, found], ends[s, found] = indptr[j], indptr[j + 1]
            max_tf[s, found], min_len[s, found] = seg_max_tf[j], seg_min_len[j]
        df = (ends - starts).sum(axis=0)
        if self.deleted.size:
            df -= self._dead_postings(term_ids, ends > starts)
        live = np.flatnonzero(df > 0)
        if live.size == 0:
            return None
        k1, b, n = self._params.k1, self._params.b, self._live
        # Lucene's idf, times how often the query asks the term, times (k1 + 1): a term's score is
        # weight * tf / (tf + norm[row]), in float32 as the exhaustive path has always computed it.
        idf = np.log1p((n - df + 0.5) / (df + 0.5)) * np.fromiter(counts.values(), dtype=np.float64)
        weights = (idf * (k1 + 1.0)).astype(np.float32)
        # The bound: tf / (tf + norm) grows with tf and norm grows with length. Inflated by 1e-4 to cover float32
        # rounding in the scores it bounds.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = max_tf / (max_tf + k1 * (1.0 - b + b * min_len / self._avgdl))
        ratio = np.where(ends > starts, ratio, 0.0).max(axis=0)
        bounds = weights.astype(np.float64) * ratio * (1.0 + 1e-4)
        order = live[np.lexsort((live, -bounds[live]))]
        return _QueryPlan(starts[:, order], ends[:, order], weights[order], bounds[order])

    def _dead_postings(self, term_ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Per query term (``term_ids[s, t]`` in segment s where ``present``), its postings in deleted rows."""
        dead = np.zeros(term_ids.shape[1], np.int64)
        for s, local in enumerate(self._dead_local):
            if local.size == 0:
                continue
            ids, counts = self._dead_terms_of(s)
            asked = np.flatnonzero(present[s])
            if ids.size == 0 or asked.size == 0:
                continue
            j = term_ids[s, asked]
            pos = np.minimum(np.searchsorted(ids, j), ids.size - 1)
            hit = ids[pos] == j
            dead[asked[hit]] += counts[pos[hit]]
        return dead

    def _dead_terms_of(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Segment s's terms that occur in its deleted rows (ascending ids) and in how many of them.

        One pass over the segment's postings, on the first query that needs it; kept with the index and handed to
        the indexes derived from it while the segment's deleted rows stay the same. A query then counts deleted
        postings with one binary search per segment instead of reading its terms' lists.
        """
        found = self._dead_terms[s]
        if found is None:
            dead = np.zeros(len(self.segments[s]), bool)
            dead[self._dead_local[s]] = True
            positions = np.flatnonzero(dead[self._postings_of[s][0]])
            terms = np.searchsorted(np.asarray(self.segments[s].indptr), positions, side="right") - 1
            found = np.unique(terms, return_counts=True)
            self._dead_terms[s] = found
        return found

    def _term_postings(self, plan: _QueryPlan, t: int) -> tuple[np.ndarray, np.ndarray]:
        """All postings of the plan's term ``t``: (global rows ascending, term frequencies); deleted rows included."""
        present = [(s, a, b) for s, (a, b) in enumerate(zip(plan.starts[:, t].tolist(), plan.ends[:, t].tolist()))
                   if b > a]
        size = sum(b - a for _, a, b in present)
        # Written in place: one pass per segment instead of a per-segment copy and then their concatenation.
        rows, tfs, at = np.empty(size, np.int64), np.empty(size, np.uint16), 0
        for s, a, b in present:
            seg_rows, seg_tf = self._postings_of[s]
            np.add(seg_rows[a:b], self._offsets[s], out=rows[at:at + b - a])
            tfs[at:at + b - a] = seg_tf[a:b]
            at += b - a
        return rows, tfs

    def _contributions(self, weight: np.ndarray | np.float32, rows: np.ndarray | None, tf: np.ndarray,
                       norm: np.ndarray | None = None) -> np.ndarray:
        """float32 term scores ``weight * tf / (tf + norm[row])``, computed alike by both paths.

        ``norm``: the rows' ``norm`` already gathered (a copy, changed here).
        """
        tf = tf.astype(np.float32)
        contributions = weight * tf
        denominator = self._norm[rows] if norm is None else norm
        denominator += tf
        contributions /= denominator
        return contributions

    def doc_freq(self, term: str) -> int:
        """Live rows containing ``term``."""
        term = term[:MAX_TOKEN_CHARS]
        count = 0
        for s, segment in enumerate(self.segments):
            j = int(np.searchsorted(segment.vocab, term))
            if j < segment.vocab.size and segment.vocab[j] == term:
                rows = self._postings_of[s][0][segment.indptr[j]:segment.indptr[j + 1]]
                count += int(np.count_nonzero(self._alive[rows + self._offsets[s]]))
        return count

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zeros for deleted rows and when no query term is known).

        The exhaustive path: every posting of every query term is read. Per row, the term scores are added in
        float64 in the plan's term order, as :meth:`search` adds them, so both give bit-identical scores.

        Returns:
            float32 array of shape ``(len(self),)``; needed for score fusion.
        """
        plan = self._plan(query)
        if plan is None:
            return np.zeros(len(self), dtype=np.float32)
        return self._scores(plan)

    def _scores(self, plan: _QueryPlan) -> np.ndarray:
        term_of, rows, tf = [], [], []
        for s, (seg_rows, seg_tf) in enumerate(self._postings_of):
            present = np.flatnonzero(plan.ends[s] > plan.starts[s])
            if present.size == 0:
                continue
            starts, ends = plan.starts[s, present].tolist(), plan.ends[s, present].tolist()
            # Contiguous slices are views of the (memory-mapped) postings: one copy, by the concatenation.
            part = np.concatenate([seg_rows[a:b] for a, b in zip(starts, ends)]).astype(np.int64)
            part += self._offsets[s]
            rows.append(part)
            tf.append(np.concatenate([seg_tf[a:b] for a, b in zip(starts, ends)]))
            term_of.append(np.repeat(present, np.subtract(ends, starts)))
        term_all, rows_all, tf_all = (np.concatenate(x) for x in (term_of, rows, tf))
        if self.deleted.size:
            keep = self._alive[rows_all]
            term_all, rows_all, tf_all = term_all[keep], rows_all[keep], tf_all[keep]
        contributions = self._contributions(plan.weights[term_all], rows_all, tf_all)
        # bincount adds each row's contributions in float64 in array order: the plan's term order.
        summed = np.bincount(rows_all, weights=contributions, minlength=len(self))
        return summed.astype(np.float32)

    def search(self, query: str, k: int = 10, rows: np.ndarray | Sequence[int] | None = None,
               prune: bool = True) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(row, score)`` pairs, best first; rows scoring 0 are left out.

        Args:
            query: the question.
            k: maximum number of results, >= 1 (larger than the corpus is fine).
            rows: search only these rows (any order, repeats allowed); None: all rows.
            prune: skip what cannot enter the top ``k`` (MaxScore, :meth:`_max_score`) when the query's terms have
                at least ``EXHAUSTIVE_BELOW`` postings per row, or score only ``rows`` when they are few; False
                scores every posting (:meth:`scores`). Both give the same pairs.

        Returns:
            Pairs sorted by descending score, ties by ascending row.
        """
        check_k(k)
        allowed = None if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        plan = self._plan(query)
        if plan is None:
            return []
        postings = int((plan.ends - plan.starts).sum())
        if allowed is not None:
            allowed = allowed[self._alive[allowed]]
            if prune and allowed.size * 4 < postings:  # few rows: score just them
                return self._max_score(plan, k, allowed, only_allowed=True)
        if prune and postings >= EXHAUSTIVE_BELOW * len(self):
            return self._max_score(plan, k, allowed)
        scores = self._scores(plan)
        if allowed is not None:
            masked = np.zeros_like(scores)
            masked[allowed] = scores[allowed]
            scores = masked
        return top_k(scores, k)

    def _max_score(self, plan: _QueryPlan, k: int, allowed: np.ndarray | None, only_allowed: bool = False,
                   ) -> list[tuple[int, float]]:
        """Top ``k`` by MaxScore over the plan's terms, strongest bound first (Turtle & Flood 1995, as in Lucene).

        ``remaining[t]`` bounds what terms t.. can add to any row. Phase 1 reads terms whole, adding their scores
        to every row (``acc``), while a row none of them holds could still reach ``theta``, a lower bound of the
        k-th best score (the k-th best partial score seen). Then the candidates are fixed: the rows seen. Phase 2
        only looks candidates up in the remaining (long, low-IDF) posting lists, dropping a candidate as soon as
        its score plus ``remaining`` falls below ``theta``. A dropped row scores below the final k-th, so the top
        ``k`` is exact; each row's terms are added in the same order as in :meth:`scores`, so are the scores.
        ``allowed`` (ascending live rows) restricts the rows; with ``only_allowed``, they are the candidates from the
        start (no list is read whole).
        """
        with self._scratch_lock:
            scratch = self._scratch.pop() if self._scratch else None
        if scratch is None:
            scratch = _Scratch(np.zeros(len(self)), np.zeros(len(self), bool), np.zeros(len(self), np.int32))
        result = self._max_score_with(scratch, plan, k, allowed, only_allowed)
        with self._scratch_lock:  # only a scratch left all zeros goes back (an exception above drops it)
            if len(self._scratch) < _SCRATCH_KEPT:
                self._scratch.append(scratch)
        return result

    def _max_score_with(self, scratch: _Scratch, plan: _QueryPlan, k: int, allowed: np.ndarray | None,
                        only_allowed: bool) -> list[tuple[int, float]]:
        n_terms = plan.weights.size
        remaining = np.zeros(n_terms + 1)
        remaining[:n_terms] = np.cumsum(plan.bounds[::-1])[::-1]
        # A row is dropped only below theta by a relative margin wider than float32 rounding, so a dropped row
        # never ties the k-th score.
        margin = 1.0 - 1e-5
        theta = 0.0
        if only_allowed and allowed is not None:
            candidates, acc, t = allowed, np.zeros(allowed.size), 0
        else:
            ok = self._alive if allowed is None else np.zeros(len(self), bool)
            if allowed is not None:
                ok[allowed] = True
            filtered = allowed is not None or self.deleted.size > 0
            # The scratch arrays are all zeros here and left so: a fresh 8 MB accumulator per query costs more
            # (page faults, then a scan for the rows seen) than reading a term's list at 1M rows.
            dense, seen = scratch.dense, scratch.seen
            top, top_values = np.zeros(0, np.int64), np.zeros(0)
            touched = []
            t = 0
            while t < n_terms and remaining[t] >= theta * margin:
                rows, tf = self._term_postings(plan, t)
                if filtered:
                    keep = ok[rows]
                    rows, tf = rows[keep], tf[keep]
                values = dense[rows]
                values += self._contributions(plan.weights[t], rows, tf)
                dense[rows] = values
                touched.append(rows)
                t += 1
                if rows.size == 0:
                    continue
                # The best k partial scores so far: among this term's rows at or above theta (partial scores only
                # grow, so the previous best k, all >= theta, are there) and the previous best k not in this list
                # (rows are ascending: a binary search each). theta, the k-th of them, bounds the final k-th.
                pick = np.flatnonzero(values >= theta)
                pool, pool_values = rows[pick], values[pick]
                if top.size:
                    elsewhere = rows[np.minimum(np.searchsorted(rows, top), rows.size - 1)] != top
                    pool = np.concatenate((pool, top[elsewhere]))
                    pool_values = np.concatenate((pool_values, top_values[elsewhere]))
                if pool.size > k:
                    best = np.argpartition(pool_values, pool.size - k)[pool.size - k:]
                    pool, pool_values = pool[best], pool_values[best]
                top, top_values = pool, pool_values
                if top.size == k:
                    theta = max(theta, float(top_values.min()))
            if sum(r.size for r in touched) * 8 > len(self):
                for rows in touched:
                    seen[rows] = True
                candidates = np.flatnonzero(seen)
                seen[candidates] = False
            else:
                candidates = sorted_unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)
            acc = dense[candidates]
            dense[candidates] = 0.0
        # Phase 2: the remaining terms, looked up for the candidates that can still make the top k.
        keep = acc + remaining[t] >= theta * margin
        candidates, acc = candidates[keep], acc[keep]
        if t == n_terms or candidates.size == 0:  # nothing to look up
            return top_of_rows(candidates, acc.astype(np.float32), k)
        # slot[row] = 1 + the row's position in candidates, 0 once dropped; live: positions of the candidates in play.
        slot, live = scratch.slot, np.arange(candidates.size)
        slot[candidates] = np.arange(1, candidates.size + 1, dtype=np.int32)
        # Each candidate's row within its segment, once for all the lookups.
        local = (candidates - self._offsets[np.searchsorted(self._offsets, candidates, side="right") - 1]
                 ).astype(np.int32)
        norm = self._norm[candidates]
        try:
            while t < n_terms and live.size:
                cuts = np.searchsorted(candidates[live], self._offsets).tolist()
                index, tf = self._lookup(plan, t, local, cuts, live, slot)
                acc[index] += self._contributions(plan.weights[t], None, tf, norm[index])
                t += 1
                live_acc = acc[live]
                # The k-th best live score, found among those >= theta (at least k when theta came from k rows).
                high = live_acc[live_acc >= theta]
                if high.size >= k:
                    theta = max(theta, float(np.partition(high, high.size - k)[high.size - k]))
                keep = live_acc + remaining[t] >= theta * margin
                if not keep.all():
                    slot[candidates[live[~keep]]] = 0
                    live = live[keep]
        finally:
            slot[candidates] = 0
        return top_of_rows(candidates[live], acc[live].astype(np.float32), k)

    def _lookup(self, plan: _QueryPlan, t: int, local: np.ndarray, cuts: list[int], live: np.ndarray,
                slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The live candidates holding the plan's term ``t``: (their positions among the candidates, tf).

        ``local`` are the candidates' rows within their segments (int32), ``live`` the ascending positions still in
        play, ``cuts[s]:cuts[s + 1]`` the part of ``live`` in segment s, ``slot[row]`` 1 + a live candidate row's
        position (0 once dropped). Per segment, the fewer into the more: the candidates are binary-searched in the
        posting list when they are few against it (a few pages of a long list are read), else the list is read once
        and each posting's row looked up in ``slot``. A query makes ~500 such visits at 1M rows: each is kept to a
        few numpy calls.
        """
        index, tfs = [], []
        starts, ends, offsets = plan.starts[:, t].tolist(), plan.ends[:, t].tolist(), self._offset_list
        for s, (a, b) in enumerate(zip(starts, ends)):
            lo, hi = cuts[s], cuts[s + 1]
            if a == b or lo == hi:
                continue
            seg_rows, seg_tf = self._postings_of[s]
            postings = seg_rows[a:b]
            if (hi - lo) * LOOKUP_READ_ABOVE > b - a:
                found = slot[offsets[s]:offsets[s + 1]].take(postings)
                at = np.flatnonzero(found)
                index.append(found[at] - 1)
                tfs.append(seg_tf[a:b].take(at))
                continue
            asked = live[lo:hi]
            wanted = local[asked]
            pos = postings.searchsorted(wanted)
            # Clipped: a row past the list's end compares with its last posting, which is smaller.
            hit = np.flatnonzero(postings.take(pos, mode="clip") == wanted)
            index.append(asked[hit])
            tfs.append(seg_tf[a:b].take(pos[hit]))
        if not index:
            return np.zeros(0, np.int64), np.zeros(0, np.uint16)
        return np.concatenate(index), np.concatenate(tfs)

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[tuple[int, float]]]:
        """:meth:`search` for several queries."""
        check_k(k)
        return [self.search(q, k) for q in queries]

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


class _Scratch(NamedTuple):
    """Per-row work arrays of one running top-k search, all zeros between searches (kept by the index for reuse)."""

    dense: np.ndarray
    seen: np.ndarray
    slot: np.ndarray


class _QueryPlan(NamedTuple):
    """A query's terms that have live postings, in decreasing order of ``bounds`` (ties: query order).

    ``starts[s, t]:ends[s, t]`` are term t's postings in segment s (empty where absent), ``weights[t]`` its
    float32 ``idf * query count * (k1 + 1)``, ``bounds[t]`` the most it can add to any row's score.
    """

    starts: np.ndarray
    ends: np.ndarray
    weights: np.ndarray
    bounds: np.ndarray
