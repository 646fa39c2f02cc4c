"""BM25 keyword index over passages, built on the ``bm25s`` library with our Chinese tokenizers.

``bm25s`` does the scoring (Lucene variant, precomputed sparse score matrix); this module only turns
text into our tokens, maps them to bm25s token ids and exposes a small API with row indices. The index
is built once (``build``) or loaded from disk (``load``) and then queried many times.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import numpy as np

from qa.tokenize import TOKENIZER_NAMES, Tokenizer, create_tokenizer

__all__ = ["DEFAULT_TOKENIZER", "DEFAULT_K1", "DEFAULT_B", "BM25Params", "BM25Index"]

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

_META_FILE = "qa_bm25.json"
_FORMAT_VERSION = 1


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


class BM25Index:
    """An immutable BM25 index over a list of texts; results refer to positions in that list.

    Create with :meth:`build` or :meth:`load`, not with the constructor.
    """

    __slots__ = ("_retriever", "_params", "_tokenizer")

    def __init__(self, retriever: bm25s.BM25, params: BM25Params) -> None:
        self._retriever = retriever
        self._params = params
        self._tokenizer: Tokenizer = create_tokenizer(params.tokenizer_name)

    @classmethod
    def build(
        cls,
        texts: list[str],
        tokenizer_name: str = DEFAULT_TOKENIZER,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
    ) -> BM25Index:
        """Tokenize ``texts`` and build the index.

        Args:
            texts: the documents/passages; row ``i`` of every result refers to ``texts[i]``.
            tokenizer_name: a name accepted by :func:`qa.tokenize.create_tokenizer`.
            k1: term-frequency saturation, in [0, 10].
            b: length normalisation, in [0, 1].

        Returns:
            The built index.

        Raises:
            ValueError: on an empty ``texts``, texts without a single token, or bad parameters.
        """
        params = BM25Params(tokenizer_name=tokenizer_name, k1=float(k1), b=float(b), n_docs=len(texts))
        if not texts:
            raise ValueError("texts is empty; need at least 1 text to build a BM25 index")
        tokenizer = create_tokenizer(tokenizer_name)
        corpus_tokens = [tokenizer(t) for t in texts]
        if not any(corpus_tokens):
            raise ValueError(f"none of the {len(texts)} texts has a token for tokenizer {tokenizer_name!r}")
        retriever = bm25s.BM25(k1=params.k1, b=params.b)
        # bm25s builds its own vocabulary from token-string lists; an empty "" token is added so that
        # documents without tokens are still valid rows.
        retriever.index(corpus_tokens, show_progress=False)
        return cls(retriever, params)

    @property
    def params(self) -> BM25Params:
        """Tokenizer name, k1, b and number of documents."""
        return self._params

    def __len__(self) -> int:
        return self._params.n_docs

    def query_token_ids(self, query: str) -> list[int]:
        """Token ids of the query that the index knows; unknown tokens are ignored.

        Repeated query tokens are kept: a term asked twice weighs twice, as in Lucene's query scoring.
        """
        vocab = self._retriever.vocab_dict
        return [vocab[t] for t in self._tokenizer(query) if t and t in vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros if no query token is in the index).

        Returns:
            float32 array of shape ``(len(self),)``; needed for score fusion.
        """
        ids = self.query_token_ids(query)
        if not ids:
            return np.zeros(self._params.n_docs, dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(row, score)`` pairs, best first; rows scoring 0 are left out.

        Args:
            query: the question.
            k: maximum number of results, >= 1 (larger than the corpus is fine).

        Returns:
            Pairs sorted by descending score, ties by ascending row.
        """
        _check_k(k)
        return _top_k(self.scores(query), k)

    def search_batch(self, queries: list[str], k: int = 10) -> list[list[tuple[int, float]]]:
        """:meth:`search` for several queries."""
        _check_k(k)
        return [_top_k(self.scores(q), k) for q in queries]

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (created if missing): bm25s files plus ``qa_bm25.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(directory), show_progress=False)
        meta = {"format_version": _FORMAT_VERSION, **asdict(self._params)}
        (directory / _META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        """Load an index written by :meth:`save`.

        Raises:
            FileNotFoundError: if ``directory`` holds no saved index.
            ValueError: if the saved format version is not supported.
        """
        directory = Path(directory)
        meta_path = directory / _META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no BM25 index in {directory}: {_META_FILE} is missing")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = meta.pop("format_version", None)
        if version != _FORMAT_VERSION:
            raise ValueError(
                f"BM25 index format_version {version!r} in {meta_path}; supported: {_FORMAT_VERSION}"
            )
        params = BM25Params(**meta)
        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        stored_docs = retriever.scores["num_docs"]
        if stored_docs != params.n_docs:
            raise ValueError(f"{meta_path} says n_docs={params.n_docs} but the bm25s index has {stored_docs}")
        return cls(retriever, params)

    def __repr__(self) -> str:
        p = self._params
        return f"BM25Index(n_docs={p.n_docs}, tokenizer={p.tokenizer_name!r}, k1={p.k1}, b={p.b})"


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is out of range; allowed: integer k >= 1")


def _top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
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
