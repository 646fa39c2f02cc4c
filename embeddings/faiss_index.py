"""Inner-product FAISS index with caller-chosen int64 ids and a model manifest on disk.

Index types (``VectorIndex(dim, index_type=...)``), all over unit vectors, score = inner product. Bytes per
vector in RAM for 384-d at 1M, measured by ``bench/bench_ann.py`` (see ``bench/README.md``):

========== ============================================ ========= ==========================================
type       structure                                    B/vector  use
========== ============================================ ========= ==========================================
flat       exact scan (IndexFlatIP)                     1588      up to ~50k vectors; exact
hnsw       HNSW graph over float32 (IndexHNSWFlat)      1860      speed when memory does not matter
hnsw_sq8   HNSW over 8-bit scalar codes (IndexHNSWSQ)   708       large corpora
ivf_sq8    inverted lists of 8-bit codes (IVF-SQ8)      455       large corpora (the ``auto`` choice)
ivf_pq     inverted lists of PQ codes (IVF-PQ)          120       smallest; recall@10 far below 0.95
auto       ``flat`` up to ``auto_threshold`` vectors, then ``auto_type``
========== ============================================ ========= ==========================================

Each includes the id map FAISS keeps beside the index (8 bytes per vector on disk, ~45 in RAM: a hash map from
id to row, needed for reconstruct-by-id).

The trained types (``hnsw_sq8``, ``ivf_sq8``, ``ivf_pq``) train their quantizer on the first
:meth:`VectorIndex.add` (on a seeded sample of at most ``train_size`` of its vectors), so the first add
should be a representative batch. Graph and IVF indexes cannot delete in place through the id map: a
removed vector is a tombstone (its id-map slot becomes -1 and searches exclude it with an id selector)
until tombstones reach :data:`COMPACT_FRACTION` of the stored rows, when the index is rebuilt from its own
stored vectors (quantizer training is kept).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.base import check_positive
from embeddings.errors import EmbeddingsError, IndexMismatchError

ANN_TYPES: tuple[str, ...] = ("hnsw", "hnsw_sq8", "ivf_sq8", "ivf_pq")
INDEX_TYPES: tuple[str, ...] = ("flat", *ANN_TYPES, "auto")
# Types whose codes need training (on the first add) before vectors can be stored.
TRAINED_TYPES: frozenset[str] = frozenset({"hnsw_sq8", "ivf_sq8", "ivf_pq"})
IVF_QUANTIZERS: tuple[str, ...] = ("flat", "hnsw")
# "auto": exact below this many vectors. A flat single-query scan costs ~0.4 ms at 10k, ~4 ms at 50k and
# ~7-8 ms at 100k x 384 here (memory-bound: 1.5 KB per vector), and is exact; above 50k it would eat most of a
# 10 ms budget, while the ANN types answer in < 1 ms at recall@10 >= 0.95 (bench/README.md).
AUTO_THRESHOLD = 50_000
# IVF-SQ8 over HNSW-SQ8: on the clustered 1M set it reached recall@10 0.972 at nprobe 8 (0.26 ms) vs 0.963 at
# ef_search 128 (0.34 ms), with 455 vs 708 bytes per vector and a 42 s vs 157 s build (the store rebuilds the
# whole index on every change); on random vectors it degraded least of all the ANN types.
AUTO_TYPE = "ivf_sq8"
# Rebuild a tombstoned index once this share of its stored rows is removed.
COMPACT_FRACTION = 0.2
# A filtered search over at most this many allowed ids scores them exactly (reconstruct + scan, 1-2 us per
# id for the SQ8 types); above it an ANN index searches with an id selector, its breadth (ef_search or
# nprobe) scaled by 1 / (allowed share), up to _FILTER_MAX_EF / nlist. bench/bench_ann.py measured why: a
# selector alone finds 2-50% of the true top 10 when 20-2,000 of 100k ids are allowed.
FILTER_EXACT_MAX = 5_000
_FILTER_MAX_EF = 4096
INDEX_FILE = "vectors.faiss"
MANIFEST_FILE = "vectors.json"
FORMAT_VERSION = 1
_MAX_DIM = 1 << 16
_MAX_ID = (1 << 63) - 1
_BITMAP_MAX_ID = 1 << 27
_TRAIN_SEED = 0
# Searches of fewer queries than this run FAISS on one OpenMP thread: a single query gains nothing from
# threads (FAISS parallelizes over queries), and on a busy 2-core machine an OpenMP barrier waiting for a
# descheduled or BLAS-spinning thread turned 0.1 ms searches into 8 ms ones (p95) in bench/bench_ann.py.
_PARALLEL_MIN_QUERIES = 16


@contextlib.contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Runs FAISS with at most ``n`` OpenMP threads in this thread (the setting is per calling thread)."""
    before = faiss.omp_get_max_threads()
    if n >= before:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _as_ids(ids: Any, what: str = "ids") -> np.ndarray:
    """Validates ids and returns them as a 1-D C-contiguous int64 array."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of int64, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    # FAISS reports "no result" as id -1, so negative ids would be ambiguous.
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what} must be >= 0, got {int(arr.min())}")
    return arr


def _sorted_unique(arr: np.ndarray) -> np.ndarray:
    """Sorted distinct values; np.unique's hash path (numpy 2.x) was ~10x slower on 10^5 int64 ids."""
    ordered = np.sort(arr)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _allowed_selector(allowed: np.ndarray) -> tuple[Any, Any]:
    """A FAISS selector for sorted unique ``allowed`` ids, plus the buffer it reads (keep it alive).

    Ids below 2**27 (row numbers, as the store uses) get a bitmap: built in ~1 ms for a million ids, where
    an IDSelectorBatch (a hash set) took ~100+ ms.
    """
    if int(allowed[-1]) < _BITMAP_MAX_ID:
        mask = np.zeros(int(allowed[-1]) + 1, dtype=bool)
        mask[allowed] = True
        bits = np.packbits(mask, bitorder="little")
        return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)), bits
    return faiss.IDSelectorBatch(allowed), None


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    """Validates an integer parameter in ``[low, high]``; the message names the range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def auto_nlist(n: int) -> int:
    """Inverted-list count for ``n`` training vectors: the power of two nearest ``2 * sqrt(n)``.

    Capped so each list gets at least 39 training points (FAISS's own minimum) and kept in [1, 65536].
    """
    target = 2.0 * math.sqrt(max(n, 1))
    nlist = 1 << max(0, round(math.log2(target)))
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return max(1, min(nlist, 1 << 16))


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

    See the module docstring for the types and what each costs. Vectors should be L2-normalized by the
    embedder. All methods are thread-safe (one lock; searches are serialized). Search-time settings
    (``ef_search``, ``nprobe``) can be changed on a loaded index without rebuilding it.

    Attributes:
        dim: Vector size.
        index_type: The requested type, one of :data:`INDEX_TYPES` (may be ``"auto"``).
    """

    def __init__(
        self,
        dim: int,
        index_type: str = "flat",
        hnsw_m: int = 32,
        ef_search: int = 128,
        *,
        ef_construction: int = 80,
        nlist: int | None = None,
        nprobe: int = 32,
        pq_m: int | None = None,
        pq_nbits: int = 8,
        ivf_quantizer: str = "flat",
        train_size: int | None = None,
        auto_threshold: int = AUTO_THRESHOLD,
        auto_type: str = AUTO_TYPE,
    ) -> None:
        """Creates an empty index.

        Args:
            dim: Vector size, in [1, 65536].
            index_type: One of :data:`INDEX_TYPES`.
            hnsw_m: HNSW graph degree M, in [2, 256] (``hnsw``, ``hnsw_sq8``; also the IVF HNSW quantizer).
            ef_search: HNSW search breadth, in [1, 65536]; raised to ``k`` per search. 128 reaches
                recall@10 0.96 (hnsw_sq8) / 0.98 (hnsw) on 1M clustered vectors in < 0.5 ms.
            ef_construction: HNSW build breadth, in [1, 4096]. Higher = better graph, slower build.
            nlist: IVF inverted lists, in [1, 65536]; ``None`` picks :func:`auto_nlist` of the first add.
            nprobe: IVF lists scanned per query, in [1, 65536] (capped at ``nlist``). 32 reaches recall@10
                0.97-0.98 from 10k to 1M clustered vectors in < 1 ms.
            pq_m: IVF-PQ sub-quantizers, in [1, dim] and dividing ``dim``; ``None`` = ``dim // 8``
                (48 for 384-d, i.e. 48 bytes per vector at 8 bits).
            pq_nbits: bits per PQ code, in [4, 12].
            ivf_quantizer: IVF coarse quantizer, ``"flat"`` (exact; fine up to ~16k lists) or ``"hnsw"``.
            train_size: most vectors used to train the trained types, in [1, 10_000_000]; ``None`` =
                ``max(50 * nlist, 10_000)`` for IVF and 100_000 for ``hnsw_sq8``.
            auto_threshold: for ``"auto"``: switch from flat to ``auto_type`` once the index holds more
                than this many vectors, in [1, 2**40].
            auto_type: for ``"auto"``: one of :data:`ANN_TYPES`.

        Raises:
            ValueError: If an argument is out of range (the message names the allowed range).
            TypeError: If an integer argument is not an int.
        """
        self.dim: int = check_positive("dim", dim, _MAX_DIM)
        self.index_type: str = _check_choice("index_type", index_type, INDEX_TYPES)
        self.hnsw_m: int = _check_int("hnsw_m", hnsw_m, 2, 256)
        self._ef_search: int = _check_int("ef_search", ef_search, 1, _MAX_DIM)
        self.ef_construction: int = _check_int("ef_construction", ef_construction, 1, 4096)
        self.nlist: int | None = None if nlist is None else _check_int("nlist", nlist, 1, 1 << 16)
        self._nprobe: int = _check_int("nprobe", nprobe, 1, 1 << 16)
        if pq_m is not None:
            _check_int("pq_m", pq_m, 1, self.dim)
            if self.dim % pq_m:
                raise ValueError(f"pq_m must divide dim={self.dim}, got {pq_m}")
        elif index_type == "ivf_pq" or auto_type == "ivf_pq":
            pq_m = self.dim // 8 if self.dim % 8 == 0 and self.dim >= 8 else self.dim
        self.pq_m: int | None = None if pq_m is None else int(pq_m)
        self.pq_nbits: int = _check_int("pq_nbits", pq_nbits, 4, 12)
        self.ivf_quantizer: str = _check_choice("ivf_quantizer", ivf_quantizer, IVF_QUANTIZERS)
        self.train_size: int | None = (
            None if train_size is None else _check_int("train_size", train_size, 1, 10_000_000)
        )
        self.auto_threshold: int = _check_int("auto_threshold", auto_threshold, 1, 1 << 40)
        self.auto_type: str = _check_choice("auto_type", auto_type, ANN_TYPES)
        self._active: str = "flat" if index_type == "auto" else index_type
        self._lock = threading.RLock()
        # None = a trained type before its first add (nothing to train on yet).
        self._index: Any = None if self._active in TRAINED_TYPES else self._new_untrained(self._active)
        self._tombstones: int = 0
        self._sorted_ids: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self.dim}, index_type={self.index_type!r}, active_type={self._active!r}, "
            f"count={len(self)})"
        )

    # --- construction ------------------------------------------------------------------------------------

    def _new_untrained(self, kind: str, nlist: int | None = None) -> Any:
        """A fresh (untrained for SQ/IVF) IndexIDMap2 of ``kind``."""
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, ip)
        elif kind == "hnsw_sq8":
            inner = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, self.hnsw_m, ip)
        else:
            coarse = f"IVF{nlist}" + (f"_HNSW{self.hnsw_m}" if self.ivf_quantizer == "hnsw" else "")
            codes = "SQ8" if kind == "ivf_sq8" else f"PQ{self.pq_m}x{self.pq_nbits}"
            # `inner` must stay the owning object the factory returned; downcast_index() gives a
            # non-owning view, so it is only used to set attributes while `inner` is alive.
            inner = faiss.index_factory(self.dim, f"{coarse},{codes}", ip)
            if kind == "ivf_pq":
                # The factory turns on polysemous training: ~100x slower to train, and only useful for
                # Hamming-distance filtering, which IP search does not use.
                faiss.downcast_index(inner).do_polysemous_training = False
        if kind in ("hnsw", "hnsw_sq8"):
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self._ef_search
        # IDMap2 (not IDMap) keeps a reverse map, enabling reconstruct-by-id.
        return faiss.IndexIDMap2(inner)

    def _inner(self) -> Any:
        return faiss.downcast_index(self._index.index)

    def _train(self, kind: str, vectors: np.ndarray) -> Any:
        """Creates an index of trained ``kind`` and trains it on a seeded sample of ``vectors``."""
        n = len(vectors)
        nlist = None
        if kind in ("ivf_sq8", "ivf_pq"):
            nlist = self.nlist or auto_nlist(n)
            if n < nlist:
                raise ValueError(
                    f"{kind} with nlist={nlist} needs at least {nlist} vectors in its first add() to train, "
                    f"got {n}; add more vectors at once, lower nlist, or use index_type 'flat'"
                )
            if kind == "ivf_pq" and n < (1 << self.pq_nbits):
                raise ValueError(
                    f"ivf_pq with pq_nbits={self.pq_nbits} needs at least {1 << self.pq_nbits} vectors in its "
                    f"first add() to train, got {n}; lower pq_nbits or use index_type 'flat'"
                )
            default_train = max(50 * nlist, 10_000)
        else:
            default_train = 100_000
        limit = self.train_size or default_train
        sample = vectors
        if n > limit:
            rows = np.sort(np.random.default_rng(_TRAIN_SEED).choice(n, size=limit, replace=False))
            sample = np.ascontiguousarray(vectors[rows])
        index = self._new_untrained(kind, nlist)
        index.train(sample)
        inner = faiss.downcast_index(index.index)
        if nlist is not None:
            self.nlist = nlist
            # An array direct map (8 bytes/vector) lets the id map reconstruct by row.
            inner.make_direct_map()
        return index

    # --- parameters ---------------------------------------------------------------------------------------

    @property
    def needs_training(self) -> bool:
        """True until the first add to a trained type (``hnsw_sq8``, ``ivf_*``), which learns its codes from it."""
        return self._index is None

    @property
    def active_type(self) -> str:
        """The structure in use: ``index_type``, or for ``"auto"`` ``"flat"`` or ``auto_type``."""
        return self._active

    @property
    def ef_search(self) -> int:
        """HNSW search breadth (higher = more accurate, slower). Unused by ``flat`` and IVF."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = _check_int("ef_search", value, 1, _MAX_DIM)

    @property
    def nprobe(self) -> int:
        """IVF lists scanned per query (higher = more accurate, slower). Unused by other types."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = _check_int("nprobe", value, 1, 1 << 16)

    def params(self) -> dict[str, Any]:
        """The construction parameters (as recorded in the manifest)."""
        return {
            "hnsw_m": self.hnsw_m,
            "ef_search": self._ef_search,
            "ef_construction": self.ef_construction,
            "nlist": self.nlist,
            "nprobe": self._nprobe,
            "pq_m": self.pq_m,
            "pq_nbits": self.pq_nbits,
            "ivf_quantizer": self.ivf_quantizer,
            "train_size": self.train_size,
            "auto_threshold": self.auto_threshold,
            "auto_type": self.auto_type,
        }

    # --- size and ids --------------------------------------------------------------------------------------

    def __len__(self) -> int:
        if self._index is None:
            return 0
        return int(self._index.ntotal) - self._tombstones

    @property
    def removed_pending(self) -> int:
        """Removed vectors still stored as tombstones (see :meth:`compact`)."""
        return self._tombstones

    def _raw_ids(self) -> np.ndarray:
        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def ids(self) -> np.ndarray:
        """Returns a copy of all stored ids (int64), in insertion order."""
        with self._lock:
            raw = self._raw_ids()
            return raw[raw >= 0] if self._tombstones else raw.copy()

    def _live_sorted(self) -> np.ndarray:
        """Sorted live ids, cached until the next add/remove (membership tests by binary search)."""
        if self._sorted_ids is None:
            self._sorted_ids = np.sort(self.ids())
        return self._sorted_ids

    def _contains(self, ids_arr: np.ndarray) -> np.ndarray:
        live = self._live_sorted()
        if live.size == 0:
            return np.zeros(ids_arr.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(live, ids_arr), live.size - 1)
        return live[pos] == ids_arr

    def copy(self) -> VectorIndex:
        """An independent copy (same type, parameters and contents): change it while readers use this one."""
        with self._lock:
            other = copy.copy(self)
            other._lock = threading.RLock()
            other._index = None if self._index is None else faiss.clone_index(self._index)
            other._sorted_ids = None
            return other

    # --- writes ----------------------------------------------------------------------------------------------

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

        The first add to a trained type (``hnsw_sq8``, ``ivf_*``) trains it on these vectors. For
        ``"auto"``, the add that takes the count past ``auto_threshold`` rebuilds the index as
        ``auto_type`` from all stored vectors (it stays ANN if removals later shrink it).

        Args:
            ids: Shape ``(n,)`` non-negative int64, unique and not already in the index.
            vectors: Shape ``(n, dim)`` float32.

        Raises:
            ValueError: On shape/dim mismatch, non-finite values, duplicate ids, or too few vectors to
                train an IVF index.
        """
        ids_arr = _as_ids(ids)
        vecs = self._as_vectors(vectors, "vectors")
        if len(ids_arr) != len(vecs):
            raise ValueError(f"got {len(ids_arr)} ids for {len(vecs)} vectors; they must match")
        if len(ids_arr) == 0:
            return
        ordered = np.sort(ids_arr)
        dupes = ordered[1:][ordered[1:] == ordered[:-1]]
        if dupes.size:
            raise ValueError(f"duplicate ids in one add(): {np.unique(dupes)[:10].tolist()}")
        with self._lock:
            # FAISS would happily store two vectors under one id and return both.
            present = ids_arr[self._contains(ids_arr)]
            if present.size:
                raise ValueError(f"ids already in the index (remove them first): {present[:10].tolist()}")
            if self.index_type == "auto" and self._active == "flat" and len(self) + len(vecs) > self.auto_threshold:
                old_ids, old_vecs = self._live_vectors()
                all_ids = np.concatenate([old_ids, ids_arr])
                all_vecs = np.concatenate([old_vecs, vecs]) if len(old_ids) else vecs
                self._rebuild(self.auto_type, all_ids, all_vecs, train=True)
            else:
                if self._index is None:
                    self._index = self._train(self._active, vecs)
                self._index.add_with_ids(vecs, ids_arr)
            self._sorted_ids = None

    def _live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, stored vectors) of the live entries; decoded codes for the compressed types."""
        raw = self._raw_ids()
        if raw.size == 0:
            return raw, np.zeros((0, self.dim), dtype=np.float32)
        rows = np.flatnonzero(raw >= 0)
        vectors = self._inner().reconstruct_n(0, len(raw))
        return raw[rows], np.ascontiguousarray(vectors[rows])

    def _rebuild(self, kind: str, ids_arr: np.ndarray, vecs: np.ndarray, train: bool) -> None:
        """Replaces the index by ``kind`` holding exactly ``ids_arr``/``vecs`` (no tombstones)."""
        if train and kind in TRAINED_TYPES:
            rebuilt = self._train(kind, vecs)
        elif kind in TRAINED_TYPES and self._index is not None:
            # Keep the trained quantizer (SQ ranges, IVF centroids, PQ codebooks): only the contents change.
            inner = faiss.clone_index(self._inner())
            inner.reset()
            rebuilt = faiss.IndexIDMap2(inner)
        else:
            rebuilt = self._new_untrained(kind)
        if len(ids_arr):
            rebuilt.add_with_ids(vecs, ids_arr)
        self._index = rebuilt
        self._active = kind
        self._tombstones = 0
        self._sorted_ids = None

    def remove(self, ids: np.ndarray) -> int:
        """Removes vectors by id; unknown ids are ignored.

        ``flat`` deletes in place. The ANN types mark the rows deleted (searches skip them) and rebuild
        from their stored vectors once :data:`COMPACT_FRACTION` of the rows are deleted.

        Args:
            ids: Ids to remove.

        Returns:
            Number of vectors removed.
        """
        ids_arr = _as_ids(ids)
        if ids_arr.size == 0:
            return 0
        with self._lock:
            if self._index is None:
                return 0
            if self._active == "flat":
                removed = int(self._index.remove_ids(_sorted_unique(ids_arr)))
            else:
                raw = self._raw_ids().copy()
                hit = np.isin(raw, ids_arr) & (raw >= 0)
                removed = int(hit.sum())
                if removed:
                    raw[hit] = -1
                    faiss.copy_array_to_vector(raw, self._index.id_map)
                    self._index.construct_rev_map()
                    self._tombstones += removed
                    if self._tombstones >= COMPACT_FRACTION * len(raw):
                        self.compact()
            if removed:
                self._sorted_ids = None
            return removed

    def compact(self) -> None:
        """Rebuilds the index without its removed (tombstoned) rows; a no-op when there are none."""
        with self._lock:
            if self._tombstones == 0 or self._index is None:
                return
            live_ids, live_vecs = self._live_vectors()
            self._rebuild(self._active, live_ids, live_vecs, train=False)

    # --- reads ------------------------------------------------------------------------------------------------

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Returns the stored vectors for ``ids`` (decoded, i.e. approximate, for the compressed types).

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
            unknown = ids_arr[~self._contains(ids_arr)]
            if unknown.size:
                raise KeyError(f"ids not in the index: {unknown[:10].tolist()}")
            with _omp_threads(1 if len(ids_arr) <= FILTER_EXACT_MAX else faiss.omp_get_max_threads()):
                return np.asarray(self._index.reconstruct_batch(ids_arr), dtype=np.float32)

    def _search_params(self, k: int, sel: Any, share: float = 1.0) -> Any:
        """FAISS search parameters; ``share`` = fraction of stored rows the selector allows."""
        kind = self._active
        boost = 1.0 / max(share, 1e-9)
        if kind in ("hnsw", "hnsw_sq8"):
            # efSearch < k would silently return fewer than k neighbours.
            ef = max(self._ef_search, k)
            if boost > 1.0:
                ef = max(ef, min(int(ef * boost), _FILTER_MAX_EF))
            return faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        if kind in ("ivf_sq8", "ivf_pq"):
            inner = self._inner()
            nprobe = min(math.ceil(self._nprobe * boost), inner.nlist)
            if self.ivf_quantizer == "hnsw":
                faiss.downcast_index(inner.quantizer).hnsw.efSearch = max(self._ef_search, 2 * nprobe)
            return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Finds the ``k`` highest inner-product vectors for each query.

        Args:
            queries: Shape ``(nq, dim)``, or ``(dim,)`` for a single query.
            k: Results per query, in [1, 100000]; may exceed ``len(self)``.
            allowed_ids: Optional filter: only these ids may be returned (ids not in the index are
                ignored). Up to :data:`FILTER_EXACT_MAX` allowed ids are scored exactly against the stored
                vectors, for every type; a larger set uses a FAISS id selector (exact for ``flat``,
                approximate for the ANN types, with the search breadth raised in proportion to how few
                ids are allowed).

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
        allowed = None if allowed_ids is None else _sorted_unique(_as_ids(allowed_ids, "allowed_ids"))
        threads = 1 if len(q) < _PARALLEL_MIN_QUERIES else faiss.omp_get_max_threads()
        with self._lock, _omp_threads(threads):
            if len(self) == 0 or len(q) == 0:
                return [[] for _ in range(len(q))]
            sel = None
            if allowed is not None:
                allowed = allowed[self._contains(allowed)]
                if allowed.size == 0:
                    return [[] for _ in range(len(q))]
                if allowed.size <= FILTER_EXACT_MAX:
                    return self._exact_subset(q, k, allowed)
                sel, _keep_alive = _allowed_selector(allowed)
            elif self._tombstones:
                # Tombstoned rows translate to id -1; a range selector drops them.
                sel = faiss.IDSelectorRange(0, _MAX_ID)
            k_eff = min(k, len(self) if allowed is None else int(allowed.size))
            share = 1.0 if allowed is None else allowed.size / self._index.ntotal
            params = self._search_params(k_eff, sel, share)
            if params is None:
                scores, ids = self._index.search(q, k_eff)
            else:
                scores, ids = self._index.search(q, k_eff, params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def _exact_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> list[list[tuple[int, float]]]:
        """Exact top-k over the stored vectors of ``allowed`` (live, sorted ids)."""
        matrix = np.ascontiguousarray(self._index.reconstruct_batch(allowed), dtype=np.float32)
        # faiss.knn, not numpy: for a few queries it scans without BLAS, whose worker threads (asleep after
        # the reconstruct) added ~8 ms wake-up stalls per search on this 2-core machine.
        scores, rows = faiss.knn(q, matrix, min(k, len(allowed)), metric=faiss.METRIC_INNER_PRODUCT)
        return [
            [(int(allowed[r]), float(sc)) for r, sc in zip(row_ids, row_scores, strict=True) if r >= 0]
            for row_ids, row_scores in zip(rows, scores, strict=True)
        ]

    # --- persistence ----------------------------------------------------------------------------------------

    def save(self, path: str | Path, model_name: str) -> None:
        """Writes ``vectors.faiss`` and ``vectors.json`` into the folder ``path``.

        Each file is replaced atomically. The index is written first and the
        manifest records its row count, so :meth:`load` detects a torn pair.
        Tombstones are saved as they are (the id map holds -1 for them).

        Args:
            path: Folder (created if missing).
            model_name: ``Embedder.name`` of the model that produced the vectors.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            # An untrained index has nothing to write; an empty flat map stands in for it.
            index = self._index if self._index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            manifest = {
                "format_version": FORMAT_VERSION,
                "model": model_name,
                "dim": self.dim,
                "index_type": self.index_type,
                "active_type": self._active,
                "count": len(self),
                "stored": int(index.ntotal),
                "hnsw_m": self.hnsw_m,
                "ef_search": self._ef_search,
                "params": self.params(),
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
            stored = int(manifest.get("stored", count))
            active = manifest.get("active_type", index_type)
            params = dict(manifest.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingsError(f"corrupt index manifest {manifest_path}: {exc}") from exc
        if model != expected_model or dim != expected_dim:
            raise IndexMismatchError(
                f"vector index at {folder} was built with model {model!r} (dim {dim}), but the current "
                f"embedder is {expected_model!r} (dim {expected_dim}); rebuild the index "
                "or switch the model back"
            )
        if index_type not in INDEX_TYPES or active not in INDEX_TYPES or active == "auto":
            raise EmbeddingsError(
                f"index manifest {manifest_path} has unknown index_type {index_type!r} / active_type {active!r}"
            )
        raw = faiss.read_index(str(index_path))
        if raw.d != dim or raw.ntotal != stored:
            raise EmbeddingsError(
                f"{index_path} holds {raw.ntotal} vectors of dim {raw.d} but the manifest says {stored} of "
                f"dim {dim}; the save was interrupted, rebuild the index"
            )
        # Older manifests carry only hnsw_m and ef_search at the top level.
        params.setdefault("hnsw_m", manifest.get("hnsw_m", 32))
        params.setdefault("ef_search", manifest.get("ef_search", 128))
        try:
            self = cls(dim, index_type, **params)
        except (TypeError, ValueError) as exc:
            raise EmbeddingsError(f"index manifest {manifest_path} has invalid parameters: {exc}") from exc
        # read_index already returns the concrete Python class; wrapping it in
        # downcast_index() would create a non-owning proxy that dangles once
        # `raw` is collected.
        if not isinstance(raw, faiss.IndexIDMap2):
            raise EmbeddingsError(f"{index_path} is not an IndexIDMap2 written by VectorIndex.save")
        if stored == 0 and active in TRAINED_TYPES:
            return self  # saved before its first add: stays untrained
        self._index = raw
        self._active = active
        self._tombstones = int((self._raw_ids() < 0).sum())
        if self._tombstones != stored - count:
            raise EmbeddingsError(
                f"{index_path} has {stored - self._tombstones} live vectors but the manifest says {count}; "
                "the save was interrupted, rebuild the index"
            )
        return self
