"""How passages are read for answer scoring: term weights (IDF of character bigrams) and sentence spans.

Kept apart from `qa.search.answer` so that retrieval (which re-ranks its top candidates by their best answering
sentence) and the answer share one reading.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable

from qa.index.tokenize import create_tokenizer
from qa.text import split_sentences


class TermWeights:
    """Inverse document frequency of character bigrams over the indexed passages: rare terms weigh more."""

    def __init__(self, texts: Iterable[str]):
        self._tokenize = create_tokenizer("char2")
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(self._tokenize(text)))
            n += 1
        self._n = max(n, 1)
        self._doc_freq: Callable[[str], int] = lambda term: df.get(term, 0)

    @classmethod
    def from_doc_freq(cls, doc_freq: Callable[[str], int], n: int) -> TermWeights:
        """Weights from an index that already counts bigram document frequencies (no pass over the texts)."""
        weights = cls(())
        weights._n = max(n, 1)
        weights._doc_freq = functools.lru_cache(maxsize=65536)(doc_freq)
        return weights

    def terms(self, text: str) -> set[str]:
        return set(self._tokenize(text))

    def idf(self, term: str) -> float:
        # BM25's idf form, floored so that a term in every passage still counts a little.
        df = self._doc_freq(term)
        return max(0.05, math.log(1 + (self._n - df + 0.5) / (df + 0.5)))

    def coverage(self, query_terms: set[str], text: str) -> float:
        """Weighted share of `query_terms` that occur in `text`."""
        if not query_terms:
            return 0.0
        present = query_terms & self.terms(text)
        total = sum(self.idf(t) for t in query_terms)
        return sum(self.idf(t) for t in present) / total


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans of `text`; a sentence end inside an open bracket (`（学名：…；…）`) does not end it."""
    flat = text.replace("\r", " ").replace("\n", " ")
    spans = split_sentences(flat) or [(0, len(text))]
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and _open_brackets(flat[merged[-1][0]:merged[-1][1]]) > 0 and end - merged[-1][0] <= BRACKET_CHARS:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


# A bracket left open at a sentence end joins the next sentence, up to BRACKET_CHARS characters in all.
BRACKET_CHARS = 300
_OPENERS = "（({「《["
_CLOSERS = "）)}」》]"


def _open_brackets(sentence: str) -> int:
    return sum(sentence.count(c) for c in _OPENERS) - sum(sentence.count(c) for c in _CLOSERS)
