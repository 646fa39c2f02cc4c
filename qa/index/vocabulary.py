"""Vocabulary learned from the indexed documents: the corpus's own words (places, projects, slogans, names).

Query analysis (:func:`qa.index.tokenize.content_terms`, :func:`~qa.index.tokenize.named_entities`) and follow-up
rewriting read the words of a question with jieba; jieba's dictionary does not know a corpus's places, projects or
slogans (古塔化工园, 六稳六保), so they fall apart into pieces. This module finds such words in the documents
themselves, without a hand-written list:

- **Learning** (:func:`learn_segment`, at index build, per segment): character n-grams of 2..`max_len` ideographs
  that recur (count), whose characters stick together (cohesion: the lowest pointwise mutual information over
  the ways to cut the n-gram in two) and whose boundaries are free (left and right branching entropy: many
  different characters occur before and after it, so it is not a fragment of a longer word). Counting is
  vectorized with numpy (each n-gram length is one ``np.unique`` over the positions still extendable), so it
  costs a few percent of the keyword index build; the text sampled per segment is capped.
- **Keeping** (:class:`SegmentVocabulary`): each segment saves its terms with the documents that contain them and
  how often, so a deleted document's terms drop out and merged segments merge their vocabularies.
- **Using** (:class:`Vocabulary`): the live terms of an index, with a part-of-speech flag from jieba's tagger
  (names and places keep jieba's ``nr``/``ns``/``nt``/``nz``); words jieba's own dictionary already holds are left
  to jieba. It is passed to query analysis explicitly: jieba's dictionary is process-global and is never changed,
  so one index's words never leak into another index served by the same process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from qa.index.tokenize import get_jieba, pos_tokenizer

__all__ = ["VOCABULARY_FILE", "LearnSettings", "SegmentVocabulary", "Vocabulary", "learn_segment", "merge_live"]

VOCABULARY_FILE = "vocabulary.json"
_FORMAT = 1

# Characters that never start or end a word: particles, copula, common prepositions, pronouns and conjunctions
# (a recurring n-gram such as 的发展 or 工作的 has free boundaries but is a phrase, not a word).
_EDGE_STOP = set("的了吗呢吧啊呀么哪谁是在和与及或等也都就对把被让从向这那之其而并且但于为以将要由我你他她它们个各每第")
# Characters that never occur inside a word either (一是全面, 工作的全过程, 激发了全区 are phrases).
_INNER_STOP = set("的是了")


@dataclass(frozen=True, slots=True)
class LearnSettings:
    """How terms are learned from a segment's documents.

    Attributes:
        max_len: longest term in characters.
        min_count: occurrences a term needs in the sampled text.
        min_entropy: lowest left and right branching entropy (nats) a term's boundaries need.
        min_cohesion: lowest pointwise mutual information (nats) over the cuts of a term in two.
        max_crossing: highest mean count of the character pairs across a term's boundary, relative to the
            term's count (a boundary that cuts a word, 深入推|进, has a pair across it commoner than the term).
        sample_chars / sample_share / min_sample_chars: characters of a segment read: `sample_share` of them, at
            least `min_sample_chars` and at most `sample_chars` (each document contributes in proportion to its size).
        max_terms: terms kept per segment at most, the most frequent first.
    """

    max_len: int = 10
    min_count: int = 2
    min_entropy: float = 0.6
    min_cohesion: float = 3.0
    max_crossing: float = 0.5
    sample_chars: int = 300_000
    sample_share: float = 0.2
    min_sample_chars: int = 50_000
    max_terms: int = 5000

    def __post_init__(self) -> None:
        if not 2 <= self.max_len <= 16:
            raise ValueError(f"max_len={self.max_len} is out of range; allowed: 2..16")
        if self.min_count < 2:
            raise ValueError(f"min_count={self.min_count} is too small; a term must recur (>= 2)")
        if self.sample_chars < 1000 or self.max_terms < 1 or not 0.0 < self.sample_share <= 1.0:
            raise ValueError("sample_chars must be >= 1000, max_terms >= 1 and sample_share in (0, 1]")


def _is_ideograph(codes: np.ndarray) -> np.ndarray:
    return (((codes >= 0x4E00) & (codes <= 0x9FFF)) | ((codes >= 0x3400) & (codes <= 0x4DBF))
            | ((codes >= 0xF900) & (codes <= 0xFAFF)) | ((codes >= 0x20000) & (codes <= 0x2FFFF)))


def _sample(texts: Sequence[str], budget: int) -> list[str]:
    """The texts, each cut to its share of `budget` characters when together they are longer."""
    total = sum(len(t) for t in texts)
    if total <= budget:
        return list(texts)
    share = budget / total
    return [t[: max(1, int(len(t) * share))] for t in texts]


def _entropy(groups: np.ndarray, neighbours: np.ndarray, n_groups: int) -> np.ndarray:
    """Branching entropy per group: the distribution of `neighbours` (0 = a boundary, each one counted apart)."""
    inner = neighbours > 0
    keys = groups[inner].astype(np.int64) * (int(neighbours.max(initial=0)) + 1) + neighbours[inner]
    pairs, counts = np.unique(keys, return_counts=True)
    owner = pairs // (int(neighbours.max(initial=0)) + 1)
    total = np.bincount(groups, minlength=n_groups).astype(np.float64)
    c_log_c = np.bincount(owner, weights=counts * np.log(counts), minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, np.log(np.maximum(total, 1)) - c_log_c / np.maximum(total, 1), 0.0)


def _crossing(ids: dict[int, np.ndarray], counts: dict[int, np.ndarray], at: np.ndarray, outer: np.ndarray,
              soft: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean count, per group, of the bigram starting at each position `at` (the pair across a term's boundary).

    `outer` is the position of the character outside the term: a pair with a non-ideograph, or with a function
    character (`soft`: 古塔区|的), counts 0 (such a boundary never cuts a word).
    """
    size = ids[1].size
    valid = (at >= 0) & (at + 1 < size)
    at = np.clip(at, 0, size - 2)
    valid &= (ids[1][at] >= 0) & (ids[1][at + 1] >= 0) & ~soft[np.clip(outer, 0, size - 1)]
    pair = ids[2][at]
    # A pair too rare to have an id occurred fewer than min_count times: it glues nothing, counts 0.
    c_pair = np.where(pair >= 0, counts[2][np.maximum(pair, 0)], 0).astype(np.float64)
    sums = np.bincount(groups, weights=np.where(valid, c_pair, 0.0), minlength=n_groups)
    return sums / np.maximum(np.bincount(groups, minlength=n_groups), 1)


def learn_segment(texts: Sequence[str], doc_of_text: Sequence[int], settings: LearnSettings | None = None,
                  ) -> SegmentVocabulary:
    """Learn the terms of one segment from its documents' texts.

    Args:
        texts: the documents' texts.
        doc_of_text: for each text, the index of its document in the segment.
        settings: thresholds; the defaults suit Chinese prose.

    Returns:
        The terms found, each with the documents holding it and how often (in the sampled text).
    """
    settings = settings or LearnSettings()
    # Not normalized: NFKC only changes non-ideographs here (boundaries either way), and would cost more than the
    # counting. A share of a large segment is read: terms worth knowing recur, and learning stays a few percent of
    # tokenizing the whole segment.
    total = sum(len(t) for t in texts)
    texts = _sample(list(texts), min(settings.sample_chars, max(settings.min_sample_chars,
                                                                int(total * settings.sample_share))))
    if not texts:
        return SegmentVocabulary.empty()
    joined = "\n".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    starts = np.cumsum([0, *(len(t) + 1 for t in texts[:-1])])
    size = codes.size
    # Dense character ids, 0 for everything that is not an ideograph (punctuation, digits, letters: boundaries).
    ideo = _is_ideograph(codes)
    if not ideo.any():  # no Chinese text (an English or numeric document): nothing to learn
        return SegmentVocabulary.empty()
    chars = np.zeros(size + settings.max_len + 1, dtype=np.int64)
    _, chars[:size][ideo] = np.unique(codes[ideo], return_inverse=True)
    chars[:size][ideo] += 1
    n_chars = int(chars.max()) + 1
    soft = np.isin(codes, np.array([ord(c) for c in _EDGE_STOP], dtype=np.uint32))
    # Neighbours for the branching entropy: digits are one neighbour, not a boundary each (14例|确诊病例 is a
    # fragment even though a different number precedes it every time); other non-ideographs are boundaries.
    neighbours = chars.copy()
    digits = np.flatnonzero((codes >= 0x30) & (codes <= 0x39))
    neighbours[digits] = n_chars
    # ids[n][i]: the id of the n-gram starting at i (-1: crosses a boundary or too rare to extend).
    ids: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}
    first: dict[int, np.ndarray] = {}
    current = np.where(chars[:size] > 0, chars[:size] - 1, -1)
    for n in range(1, settings.max_len + 2):
        if n > 1:
            prev = ids[n - 1]
            nxt = chars[n - 1 : n - 1 + size]
            ok = (prev >= 0) & (nxt > 0)
            current = np.full(size, -1, dtype=np.int64)
            keys = prev[ok] * n_chars + nxt[ok]
        else:
            ok = current >= 0
            keys = current[ok]
        if not ok.any():
            break
        _, inverse, cnt = np.unique(keys, return_inverse=True, return_counts=True)
        positions = np.flatnonzero(ok)
        # One occurrence of each n-gram (which one does not matter: they all read the same).
        at = np.empty(cnt.size, dtype=np.int64)
        at[inverse] = positions
        # Rare n-grams are dropped here, so longer n-grams only grow from frequent ones (the counting stays cheap).
        keep = cnt >= (settings.min_count if n > 1 else 1)
        remap = np.cumsum(keep) - 1
        frequent = keep[inverse]
        current[positions[frequent]] = remap[inverse[frequent]]
        ids[n], counts[n], first[n] = current, cnt[keep], at[keep]
    unigram_total = float(max(int((ids[1] >= 0).sum()), 1))
    found: list[tuple[int, int]] = []  # (n, id)
    for n in range(2, settings.max_len + 1):
        if n not in ids or counts[n].size == 0:
            continue
        grams, cnt = ids[n], counts[n]
        at = np.flatnonzero(grams >= 0)
        g = grams[at]
        right = neighbours[at + n]
        left = np.where(at > 0, neighbours[np.maximum(at - 1, 0)], 0)
        k = cnt.size
        free = np.minimum(_entropy(g, right, k), _entropy(g, left, k))
        # Cohesion: the weakest of the n-1 ways to cut the n-gram in two (PMI of the two halves).
        pos = first[n]
        cohesion = np.full(k, np.inf)
        for cut in range(1, n):
            a = counts[cut][ids[cut][pos]]
            b = counts[n - cut][ids[n - cut][pos + cut]]
            cohesion = np.minimum(cohesion, np.log(cnt * unigram_total / (a * b.astype(np.float64))))
        # A boundary inside a word: the pair across it (推|进 of 深入推|进) is commoner than the term itself.
        across = np.maximum(_crossing(ids, counts, at + n - 1, at + n, soft, g, k),
                            _crossing(ids, counts, at - 1, at - 1, soft, g, k)) / cnt
        good = np.flatnonzero((free >= settings.min_entropy) & (cohesion >= settings.min_cohesion)
                              & (across <= settings.max_crossing))
        found.extend((n, int(i)) for i in good)
    terms: dict[str, tuple[int, int]] = {}
    for n, i in found:
        p = int(first[n][i])
        word = joined[p : p + n]
        if word[0] not in _EDGE_STOP and word[-1] not in _EDGE_STOP and not _INNER_STOP.intersection(word):
            terms[word] = (n, i)
    chosen = sorted(sorted(terms, key=lambda w: (-int(counts[terms[w][0]][terms[w][1]]), w))[: settings.max_terms])
    return _attribute([(w, *terms[w]) for w in chosen], ids, starts, np.asarray(doc_of_text, dtype=np.int64))


def _attribute(chosen: list[tuple[str, int, int]], ids: dict[int, np.ndarray], starts: np.ndarray,
               doc_of_text: np.ndarray) -> SegmentVocabulary:
    """Which documents hold each chosen ``(term, n, id)`` and how often: the positions of its n-gram id."""
    n_docs = int(doc_of_text.max(initial=0)) + 1
    keys = []
    for n in sorted({n for _, n, _ in chosen}):
        term_of_id = np.full(int(ids[n].max()) + 1, -1, dtype=np.int64)
        for t, (_, size, i) in enumerate(chosen):
            if size == n:
                term_of_id[i] = t
        at = np.flatnonzero(ids[n] >= 0)
        t = term_of_id[ids[n][at]]
        at, t = at[t >= 0], t[t >= 0]
        owners = doc_of_text[np.searchsorted(starts, at, side="right") - 1]
        keys.append(t * n_docs + owners)
    pairs, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)
    per_term = np.bincount(pairs // n_docs, minlength=len(chosen))
    return SegmentVocabulary(tuple(w for w, _, _ in chosen), np.concatenate(([0], np.cumsum(per_term))).astype(np.int64),
                             (pairs % n_docs).astype(np.int32), counts.astype(np.int32))


@dataclass(frozen=True, eq=False)
class SegmentVocabulary:
    """The terms learned from one segment: for term t, ``docs[indptr[t]:indptr[t+1]]`` are the (segment-local)
    indexes of the documents holding it and ``counts[...]`` how often each does."""

    terms: tuple[str, ...]
    indptr: np.ndarray
    docs: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls) -> SegmentVocabulary:
        return cls((), np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.terms)

    def _per_term(self, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (one per document entry) per term."""
        owner = np.repeat(np.arange(len(self.terms)), np.diff(self.indptr))
        return np.bincount(owner, weights=values, minlength=len(self.terms))

    def live(self, dead_docs: Iterable[int] = ()) -> dict[str, int]:
        """``{term: occurrences}`` in the documents not in `dead_docs` (terms only deleted documents held: gone)."""
        dead = np.fromiter(dead_docs, dtype=np.int64)
        alive = ~np.isin(self.docs, dead) if dead.size else np.ones(self.docs.size, dtype=bool)
        totals = self._per_term(np.where(alive, self.counts, 0).astype(np.float64))
        return {t: int(c) for t, c in zip(self.terms, totals, strict=True) if c > 0}

    def remapped(self, new_index: Sequence[int]) -> SegmentVocabulary:
        """The same terms with document ``i`` renumbered ``new_index[i]`` (-1 drops it), for a segment merge."""
        mapping = np.asarray(new_index, dtype=np.int64)
        docs = mapping[self.docs] if self.docs.size else self.docs.astype(np.int64)
        keep = docs >= 0
        kept = self._per_term(keep.astype(np.float64)).astype(np.int64)
        indptr = np.concatenate(([0], np.cumsum(kept))).astype(np.int64)
        return SegmentVocabulary(self.terms, indptr, docs[keep].astype(np.int32), self.counts[keep])

    @classmethod
    def concat(cls, parts: Sequence[SegmentVocabulary]) -> SegmentVocabulary:
        """One vocabulary holding every part's terms and documents (document indexes already made distinct)."""
        rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for part in parts:
            for t, term in enumerate(part.terms):
                a, b = int(part.indptr[t]), int(part.indptr[t + 1])
                if b > a:
                    rows.setdefault(term, []).append((part.docs[a:b], part.counts[a:b]))
        terms = sorted(rows)
        docs = [np.concatenate([d for d, _ in rows[t]]) for t in terms]
        counts = [np.concatenate([c for _, c in rows[t]]) for t in terms]
        indptr = np.concatenate(([0], np.cumsum([d.size for d in docs]))).astype(np.int64)
        return cls(tuple(terms), indptr, np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32),
                   np.concatenate(counts).astype(np.int32) if counts else np.zeros(0, np.int32))

    def save(self, folder: Path) -> Path:
        """Write ``vocabulary.json`` into `folder` (small: a few thousand terms with their document lists)."""
        path = folder / VOCABULARY_FILE
        body = {"format": _FORMAT, "terms": list(self.terms), "indptr": self.indptr.tolist(),
                "docs": self.docs.tolist(), "counts": self.counts.tolist()}
        path.write_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> SegmentVocabulary:
        """Read what :meth:`save` wrote. Raises ValueError on a malformed file, OSError when unreadable."""
        body = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        if not isinstance(body, dict) or body.get("format") != _FORMAT:
            raise ValueError(f"{folder / VOCABULARY_FILE} is not a vocabulary of format {_FORMAT}")
        terms = tuple(str(t) for t in body["terms"])
        indptr = np.asarray(body["indptr"], dtype=np.int64)
        docs, counts = np.asarray(body["docs"], dtype=np.int32), np.asarray(body["counts"], dtype=np.int32)
        if indptr.size != len(terms) + 1 or int(indptr[-1]) != docs.size or docs.size != counts.size:
            raise ValueError(f"{folder / VOCABULARY_FILE} is inconsistent")
        return cls(terms, indptr, docs, counts)


def merge_live(parts: Iterable[tuple[SegmentVocabulary, Iterable[int]]]) -> dict[str, int]:
    """``{term: occurrences}`` over segments, each given with its deleted documents' local indexes."""
    total: dict[str, int] = {}
    for vocabulary, dead in parts:
        for term, count in vocabulary.live(dead).items():
            total[term] = total.get(term, 0) + count
    return total


# Tagging a term is a pure function of the term and jieba's (never modified) dictionary: shared by every index.
_TAG_LOCK = threading.Lock()


@lru_cache(maxsize=262_144)
def _tag(term: str) -> str | None:
    """The part-of-speech flag of a learned term; None when jieba's own dictionary already has the word."""
    if get_jieba().FREQ.get(term):
        return None
    pieces = pos_tokenizer().lcut(term)
    if len(pieces) == 1:
        return pieces[0].flag
    # A compound: a place or organisation name heads a proper name (古塔化工园), anything else is a noun phrase.
    head = pieces[0].flag
    return head if head.startswith(("ns", "nt", "nz")) else "n"


@dataclass(frozen=True)
class Vocabulary:
    """The learned words of one index, for query analysis: ``{word: jieba flag}`` and a longest-match finder.

    Built from the live terms (:func:`merge_live`); flags are tagged on first use (jieba loads then), not at build.
    """

    counts: dict[str, int] = field(default_factory=dict)

    @cached_property
    def words(self) -> dict[str, str]:
        """``{word: flag}`` of the learned words jieba's dictionary does not already hold."""
        with _TAG_LOCK:
            flags = {term: _tag(term) for term in self.counts}
        return {term: flag for term, flag in flags.items() if flag is not None}

    @cached_property
    def _lengths(self) -> tuple[int, ...]:
        return tuple(sorted({len(w) for w in self.words}, reverse=True))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Non-overlapping ``[start, end)`` of learned words in `text`, longest match first, left to right."""
        words, lengths, found, i = self.words, self._lengths, [], 0
        while i < len(text):
            for n in lengths:
                if text[i : i + n] in words:
                    found.append((i, i + n))
                    i += n
                    break
            else:
                i += 1
        return found

    def __len__(self) -> int:
        return len(self.words)
