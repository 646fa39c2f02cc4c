"""A weight-free, deterministic embedder for tests.

Character unigrams and bigrams are hashed into a fixed number of buckets
("feature hashing"). Texts sharing many characters get similar vectors, which
is enough to exercise indexing and ranking code without loading a model.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from embeddings.base import check_positive, check_texts, empty_embeddings, l2_normalize

_MAX_DIM = 1 << 16
# Stands in for the empty string so that "" still gets a unit-norm vector.
_EMPTY_FEATURE = "\x00<empty>"


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Maps a feature to (bucket index, +/-1 sign) with a process-independent hash."""
    # blake2b rather than hash(): str hashes are salted per process
    # (PYTHONHASHSEED), which would make vectors differ between runs.
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # The sign bit makes colliding features cancel on average instead of
    # always adding up, which keeps inner products closer to unbiased.
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


class HashingEmbedder:
    """Deterministic character unigram + bigram feature-hashing embedder.

    Intended for tests: fast, no weights, identical output across processes and
    machines. Queries and documents are encoded the same way.

    Attributes:
        name: ``f"hashing-{dim}"``.
        dim: Number of hash buckets (vector size).
    """

    def __init__(self, dim: int = 256) -> None:
        """Creates the embedder.

        Args:
            dim: Vector size, in [1, 65536].

        Raises:
            ValueError: If ``dim`` is out of range.
        """
        self.dim: int = check_positive("dim", dim, _MAX_DIM)
        self.name: str = f"hashing-{self.dim}"

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim})"

    def _features(self, text: str) -> list[str]:
        # Lower-casing is the only normalisation: it is language-agnostic and
        # makes "Cat" and "cat" share features.
        chars = text.lower()
        if not chars:
            return [_EMPTY_FEATURE]
        unigrams = list(chars)
        bigrams = [chars[i : i + 2] for i in range(len(chars) - 1)]
        return unigrams + bigrams

    def _encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return empty_embeddings(self.dim)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                bucket, sign = _bucket(feature, self.dim)
                out[row, bucket] += sign
        # Rare case: every feature cancelled out; fall back to the empty-text
        # vector so the row can still be normalized.
        for row in np.flatnonzero(~out.any(axis=1)):
            bucket, sign = _bucket(_EMPTY_FEATURE, self.dim)
            out[row, bucket] = sign
        return l2_normalize(out)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes queries; see :meth:`embeddings.base.Embedder.encode_queries`."""
        return self._encode(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Encodes documents; see :meth:`embeddings.base.Embedder.encode_documents`."""
        return self._encode(texts)
