"""Inner-product FAISS index with caller-chosen int64 ids and a model manifest on disk."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.base import check_positive
from embeddings.errors import EmbeddingsError, IndexMismatchError

INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw")
INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "vectors.json"
FORMAT_VERSION = 1
_MAX_DIM = 1 << 16


def _as_ids(ids: Any) -> np.ndarray:
    """Validates ids and returns them as a 1-D C-contiguous int64 array."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-D array of int64, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    # FAISS reports "no result" as id -1, so negative ids would be ambiguous.
    if arr.size and arr.min() < 0:
        raise ValueError(f"ids must be >= 0, got {int(arr.min())}")
    return arr


def _write_atomic(path: Path, write: Any) -> None:
    """Calls ``write(tmp_path)`` then renames the temp file over ``path``."""
    # Temp file in the same folder so os.replace is an atomic rename on one
    # filesystem: readers see the old file or the new one, never half of one.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorIndex:
    """Inner-product (cosine, for unit vectors) index over caller-chosen int64 ids.

    ``"flat"`` is exact brute force (best below ~1M vectors); ``"hnsw"`` is an
    approximate graph index. Vectors should be L2-normalized by the embedder.
    All methods are thread-safe.

    Attributes:
        dim: Vector size.
        index_type: ``"flat"`` or ``"hnsw"``.
    """

    def __init__(self, dim: int, index_type: str = "flat", hnsw_m: int = 32, ef_search: int = 64) -> None:
        """Creates an empty index.

        Args:
            dim: Vector size, in [1, 65536].
            index_type: One of :data:`INDEX_TYPES`.
            hnsw_m: HNSW graph degree M, in [2, 256] (ignored for ``"flat"``).
            ef_search: HNSW search breadth, in [1, 65536]; raised to ``k`` per search.

        Raises:
            ValueError: If an argument is out of range.
        """
        self.dim: int = check_positive("dim", dim, _MAX_DIM)
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {list(INDEX_TYPES)}, got {index_type!r}")
        check_positive("hnsw_m", hnsw_m, 256)
        if hnsw_m < 2:
            raise ValueError(f"hnsw_m must be in [2, 256], got {hnsw_m}")
        self.index_type: str = index_type
        self.hnsw_m: int = int(hnsw_m)
        self._ef_search: int = check_positive("ef_search", ef_search, _MAX_DIM)
        self._lock = threading.RLock()
        self._index = self._new_index()

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, index_type={self.index_type!r}, count={len(self)})"

    def _new_index(self) -> Any:
        if self.index_type == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efSearch = self._ef_search
        # IDMap2 (not IDMap) keeps a reverse map, enabling reconstruct-by-id,
        # which remove() needs to rebuild HNSW indexes.
        return faiss.IndexIDMap2(inner)

    def _inner(self) -> Any:
        return faiss.downcast_index(self._index.index)

    @property
    def ef_search(self) -> int:
        """HNSW search breadth (higher = more accurate, slower). Unused for ``"flat"``."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = check_positive("ef_search", value, _MAX_DIM)
        if self.index_type == "hnsw":
            with self._lock:
                self._inner().hnsw.efSearch = self._ef_search

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Returns a copy of all stored ids (int64), in insertion order."""
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=True)

    def _as_vectors(self, vectors: Any, what: str) -> np.ndarray:
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (n, {self.dim}) for this index, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or inf")
        return arr

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Adds vectors under the given ids.

        Args:
            ids: Shape ``(n,)`` non-negative int64, unique and not already in the index.
            vectors: Shape ``(n, dim)`` float32.

        Raises:
            ValueError: On shape/dim mismatch, non-finite values, or duplicate ids.
        """
        ids_arr = _as_ids(ids)
        vecs = self._as_vectors(vectors, "vectors")
        if len(ids_arr) != len(vecs):
            raise ValueError(f"got {len(ids_arr)} ids for {len(vecs)} vectors; they must match")
        if len(ids_arr) == 0:
            return
        uniq, counts = np.unique(ids_arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"duplicate ids in one add(): {uniq[counts > 1][:10].tolist()}")
        with self._lock:
            # FAISS would happily store two vectors under one id and return both.
            present = ids_arr[np.isin(ids_arr, self.ids())]
            if present.size:
                raise ValueError(f"ids already in the index (remove them first): {present[:10].tolist()}")
            self._index.add_with_ids(vecs, ids_arr)

    def remove(self, ids: np.ndarray) -> int:
        """Removes vectors by id; unknown ids are ignored.

        For ``"hnsw"`` the graph cannot delete nodes, so the index is rebuilt from
        the remaining vectors (cost comparable to re-adding them).

        Args:
            ids: Ids to remove.

        Returns:
            Number of vectors removed.
        """
        ids_arr = _as_ids(ids)
        if ids_arr.size == 0:
            return 0
        with self._lock:
            if self.index_type == "flat":
                return int(self._index.remove_ids(ids_arr))
            stored = self.ids()
            keep = ~np.isin(stored, ids_arr)
            removed = int((~keep).sum())
            if removed:
                vectors = self._inner().reconstruct_n(0, len(stored))
                rebuilt = self._new_index()
                if keep.any():
                    rebuilt.add_with_ids(np.ascontiguousarray(vectors[keep]), stored[keep])
                self._index = rebuilt
            return removed

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Returns the stored vectors for ``ids`` (e.g. to score a filtered subset exactly).

        Args:
            ids: Ids present in the index.

        Returns:
            float32 array ``(len(ids), dim)``, rows in the order of ``ids``.

        Raises:
            KeyError: If some ids are not in the index (the first few are named).
        """
        ids_arr = _as_ids(ids)
        if ids_arr.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            # Checked up front: FAISS reports unknown ids as an opaque C++ RuntimeError.
            unknown = ids_arr[~np.isin(ids_arr, self.ids())]
            if unknown.size:
                raise KeyError(f"ids not in the index: {unknown[:10].tolist()}")
            return np.asarray(self._index.reconstruct_batch(ids_arr), dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Finds the ``k`` highest inner-product vectors for each query.

        Args:
            queries: Shape ``(nq, dim)``, or ``(dim,)`` for a single query.
            k: Results per query, in [1, 100000]; may exceed ``len(self)``.

        Returns:
            Per query, up to ``k`` ``(id, score)`` pairs, best first.

        Raises:
            ValueError: On shape/dim mismatch or ``k`` out of range.
        """
        k = check_positive("k", k, 100_000)
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        q = self._as_vectors(q, "queries")
        with self._lock:
            if len(self) == 0 or len(q) == 0:
                return [[] for _ in range(len(q))]
            k_eff = min(k, len(self))
            if self.index_type == "hnsw":
                # efSearch < k would silently return fewer than k neighbours.
                self._inner().hnsw.efSearch = max(self._ef_search, k_eff)
            scores, ids = self._index.search(q, k_eff)
            if self.index_type == "hnsw":
                self._inner().hnsw.efSearch = self._ef_search
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i != -1]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def save(self, path: str | Path, model_name: str) -> None:
        """Writes ``vectors.faiss`` and ``vectors.json`` into the folder ``path``.

        Each file is replaced atomically. The index is written first and the
        manifest records its count, so :meth:`load` detects a torn pair.

        Args:
            path: Folder (created if missing).
            model_name: ``Embedder.name`` of the model that produced the vectors.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            index = self._index
            manifest = {
                "format_version": FORMAT_VERSION,
                "model": model_name,
                "dim": self.dim,
                "index_type": self.index_type,
                "count": len(self),
                "hnsw_m": self.hnsw_m,
                "ef_search": self._ef_search,
            }
            _write_atomic(folder / INDEX_FILE, lambda tmp: faiss.write_index(index, tmp))
        text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
        _write_atomic(folder / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path, expected_model: str, expected_dim: int) -> VectorIndex:
        """Loads an index saved by :meth:`save`, refusing one built by another model.

        Args:
            path: Folder passed to :meth:`save`.
            expected_model: ``Embedder.name`` of the current query embedder.
            expected_dim: ``Embedder.dim`` of the current query embedder.

        Returns:
            The loaded index.

        Raises:
            FileNotFoundError: If the folder or one of its two files is missing.
            IndexMismatchError: If the index was built with another model or dim.
            EmbeddingsError: If the files are corrupt or out of sync.
        """
        folder = Path(path)
        index_path, manifest_path = folder / INDEX_FILE, folder / MANIFEST_FILE
        for p in (manifest_path, index_path):
            if not p.is_file():
                raise FileNotFoundError(
                    f"no vector index at {folder}: {p.name} is missing; build the index first"
                )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            model, dim, index_type, count = (
                manifest["model"],
                int(manifest["dim"]),
                manifest["index_type"],
                int(manifest["count"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingsError(f"corrupt index manifest {manifest_path}: {exc}") from exc
        if model != expected_model or dim != expected_dim:
            raise IndexMismatchError(
                f"vector index at {folder} was built with model {model!r} (dim {dim}), but the current "
                f"embedder is {expected_model!r} (dim {expected_dim}); rebuild the index "
                "or switch the model back"
            )
        if index_type not in INDEX_TYPES:
            raise EmbeddingsError(f"index manifest {manifest_path} has unknown index_type {index_type!r}")
        raw = faiss.read_index(str(index_path))
        if raw.d != dim or raw.ntotal != count:
            raise EmbeddingsError(
                f"{index_path} holds {raw.ntotal} vectors of dim {raw.d} but the manifest says {count} of "
                f"dim {dim}; the save was interrupted, rebuild the index"
            )
        self = cls(
            dim,
            index_type,
            hnsw_m=int(manifest.get("hnsw_m", 32)),
            ef_search=int(manifest.get("ef_search", 64)),
        )
        # read_index already returns the concrete Python class; wrapping it in
        # downcast_index() would create a non-owning proxy that dangles once
        # `raw` is collected.
        self._index = raw
        if not isinstance(self._index, faiss.IndexIDMap2):
            raise EmbeddingsError(f"{index_path} is not an IndexIDMap2 written by VectorIndex.save")
        if index_type == "hnsw":
            self._inner().hnsw.efSearch = self._ef_search
        return self
