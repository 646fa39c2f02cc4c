"""Tests for EmbeddingCache and encode_documents_cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.cache import EmbeddingCache, encode_documents_cached
from embeddings.hashing import HashingEmbedder


class CountingEmbedder:
    """Wraps HashingEmbedder and records every text it is asked to encode."""

    def __init__(self, dim: int = 32) -> None:
        self._inner = HashingEmbedder(dim)
        self.name = self._inner.name
        self.dim = dim
        self.encoded: list[str] = []
        self.calls = 0

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._inner.encode_queries(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        return self._inner.encode_documents(texts)


TEXTS = [f"第{i}段：固定资产投资完成{i}亿元" for i in range(10)]


def test_hits_avoid_reencoding(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
        first = encode_documents_cached(emb, TEXTS[:6], cache, batch_size=4)
        assert emb.encoded == TEXTS[:6] and emb.calls == 2
        emb.encoded.clear()
        second = encode_documents_cached(emb, TEXTS, cache, batch_size=4)
        assert emb.encoded == TEXTS[6:]
    np.testing.assert_array_equal(second[:6], first)
    np.testing.assert_array_equal(second, HashingEmbedder(32).encode_documents(TEXTS))


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    emb = CountingEmbedder()
    with EmbeddingCache(path) as cache:
        expected = encode_documents_cached(emb, TEXTS, cache)
    emb.encoded.clear()
    with EmbeddingCache(path) as cache:
        assert len(cache) == len(TEXTS)
        got = encode_documents_cached(emb, TEXTS, cache)
        # Another model name is a separate namespace.
        assert cache.get_many("other-model", TEXTS[:2]) == [None, None]
    assert emb.encoded == []
    np.testing.assert_array_equal(got, expected)


def test_progress_sums_to_total_and_duplicates_encoded_once(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    texts = TEXTS[:3] + TEXTS[:3] + TEXTS[3:5]
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(emb.name, TEXTS[:1], emb._inner.encode_documents(TEXTS[:1]))
        calls: list[int] = []
        out = encode_documents_cached(emb, texts, cache, batch_size=2, progress=calls.append)
    assert sorted(emb.encoded) == sorted(TEXTS[1:5])
    assert calls == [2, 4, 2]  # 2 hits (TEXTS[0] twice); batch {1, 2} fills 4 rows; batch {3, 4} fills 2
    assert sum(calls) == len(texts)
    np.testing.assert_array_equal(out, HashingEmbedder(32).encode_documents(texts))


def test_without_cache_and_empty_input() -> None:
    emb = CountingEmbedder()
    out = encode_documents_cached(emb, TEXTS, None, batch_size=3)
    assert out.shape == (10, 32) and emb.calls == 4
    assert encode_documents_cached(emb, [], None).shape == (0, 32)
    with pytest.raises(ValueError, match="batch_size"):
        encode_documents_cached(emb, TEXTS, None, batch_size=0)


def test_put_many_validates_shape(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ValueError, match=r"shape \(2, dim\)"):
            cache.put_many("m", ["a", "b"], np.zeros((3, 4), np.float32))
        cache.put_many("m", ["a", "b"], np.arange(8, dtype=np.float32).reshape(2, 4))
        got = cache.get_many("m", ["b", "zzz", "a"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], [4, 5, 6, 7])
    assert got[2] is not None and got[2].dtype == np.float32
