"""Persistent cache of document vectors, so re-indexing unchanged passages costs nothing.

Vectors are keyed by (model name, sha256 of the exact text) and stored as raw
float32 bytes in a SQLite database.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from embeddings.base import Embedder, check_positive, check_texts, empty_embeddings

# SQLite builds before 3.32 cap bound parameters at 999; stay well under it.
_SQL_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text_sha256)
) WITHOUT ROWID
"""


def text_key(text: str) -> str:
    """Returns the hex sha256 of ``text`` (UTF-8), the cache key for a passage."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """SQLite-backed cache of document vectors, safe to share between threads.

    Attributes:
        path: Location of the SQLite file.
    """

    def __init__(self, path: str | Path) -> None:
        """Opens (creating if needed) the cache file.

        Args:
            path: SQLite file path; parent folders are created.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared under a lock: simpler than per-thread
        # connections, and encoding (not SQLite) is the bottleneck anyway.
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False)
        with self._lock:
            # WAL lets a reader (e.g. the API) and an indexing job use the file together.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the database connection."""
        with self._lock:
            self._conn.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def get_many(self, model_name: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Looks up cached vectors.

        Args:
            model_name: The embedder's ``name``.
            texts: Passages to look up.

        Returns:
            One entry per text, in order: its float32 vector, or ``None`` on a miss.
        """
        texts = check_texts(texts)
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _SQL_CHUNK):
                chunk = unique[start : start + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT text_sha256, dim, vector FROM vectors"
                    f" WHERE model = ? AND text_sha256 IN ({marks})",
                    [model_name, *chunk],
                ).fetchall()
                for key, dim, blob in rows:
                    # A truncated/foreign blob is treated as a miss and simply
                    # re-encoded, rather than poisoning the index.
                    if len(blob) == dim * 4:
                        found[key] = np.frombuffer(blob, dtype=np.float32).copy()
        return [found.get(k) for k in keys]

    def put_many(self, model_name: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Stores vectors, replacing any existing entry for the same (model, text).

        Args:
            model_name: The embedder's ``name``.
            texts: Passages, one per row of ``vectors``.
            vectors: Array of shape ``(len(texts), dim)``.

        Raises:
            ValueError: If the number of rows does not match the number of texts.
        """
        texts = check_texts(texts)
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(texts):
            raise ValueError(f"vectors must have shape ({len(texts)}, dim) to match texts, got {arr.shape}")
        dim = int(arr.shape[1])
        rows = [(model_name, text_key(t), dim, arr[i].tobytes()) for i, t in enumerate(texts)]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, text_sha256, dim, vector) VALUES (?, ?, ?, ?)", rows
            )


def encode_documents_cached(
    embedder: Embedder,
    texts: Sequence[str],
    cache: EmbeddingCache | None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Encodes documents, reusing cached vectors and encoding only the misses.

    Identical texts in ``texts`` are encoded once. Each encoded batch is written
    to the cache immediately, so an interrupted run keeps its progress.

    Args:
        embedder: The embedder; its ``name`` is the cache namespace.
        texts: Passages to encode.
        cache: Cache to read and fill, or ``None`` to always encode.
        batch_size: Unique texts per ``encode_documents`` call, in [1, 100000].
        progress: Called with the number of input texts completed: once for all
            cache hits (if any), then after each encoded batch. The calls sum to
            ``len(texts)``, so it can drive a progress bar directly.

    Returns:
        float32 array ``(len(texts), embedder.dim)``, rows in input order.

    Raises:
        ValueError: If ``batch_size`` is out of range or the embedder returns a bad shape.
    """
    check_positive("batch_size", batch_size, 100_000)
    texts = check_texts(texts)
    if not texts:
        return empty_embeddings(embedder.dim)
    cached = cache.get_many(embedder.name, texts) if cache is not None else [None] * len(texts)
    # Positions of each distinct missing text, so duplicates are encoded once.
    missing: dict[str, list[int]] = {}
    hit_rows: list[tuple[int, np.ndarray]] = []
    for i, (text, vec) in enumerate(zip(texts, cached, strict=True)):
        if vec is None:
            missing.setdefault(text, []).append(i)
        else:
            hit_rows.append((i, vec))
    dim = embedder.dim
    out = np.empty((len(texts), dim), dtype=np.float32)
    n_hits = 0
    for i, vec in hit_rows:
        # A cached vector of another size means the model changed under the
        # same name; re-encode instead of returning inconsistent rows.
        if vec.shape != (dim,):
            missing.setdefault(texts[i], []).append(i)
            continue
        out[i] = vec
        n_hits += 1
    if progress is not None and n_hits:
        progress(n_hits)
    todo = list(missing)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        vecs = np.asarray(embedder.encode_documents(batch), dtype=np.float32)
        if vecs.shape != (len(batch), dim):
            raise ValueError(
                f"embedder {embedder.name!r} returned shape {vecs.shape} for {len(batch)} texts, "
                f"expected ({len(batch)}, {dim})"
            )
        for text, vec in zip(batch, vecs, strict=True):
            out[missing[text]] = vec
        if cache is not None:
            cache.put_many(embedder.name, batch, vecs)
        if progress is not None:
            progress(sum(len(missing[t]) for t in batch))
    return out
