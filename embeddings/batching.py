"""One query encoder per process: questions from concurrent callers are encoded together, on one thread.

Why: a serving process answers each request on a thread of its own. When every request thread calls the engine,
each calling thread gets its own OpenMP thread team, and on a 2-core machine 8 teams of spinning threads fight over
the cores (measured: 31 req/s at 1 client, 18 at 8). `QueryBatcher` hands the questions to a single worker thread
instead, which encodes whatever has queued up in one call (dynamic batching: it waits at most `max_wait_ms` for
callers it knows are coming, and takes at most `max_batch` questions at a time). An LRU cache of question vectors
(exact text) answers repeated questions without encoding.

Passages (`encode_documents`) go straight to the wrapped embedder on the caller's thread: indexing is one long call
per batch and gains nothing from being mixed with questions.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from embeddings.base import Embedder, check_positive, check_texts, empty_embeddings


@dataclass(frozen=True, slots=True)
class QueryEncoderStats:
    """Counters since the batcher was made: cache hits and misses, encoder calls and the questions they held."""

    cache_hits: int
    cache_misses: int
    batches: int
    batched_queries: int
    cache_size: int


class QueryBatcher:
    """An `Embedder` whose query encoding runs on one worker thread, in batches, behind an LRU cache.

    Attributes:
        name, dim: those of the wrapped embedder (index manifests and caches see no difference).
        inner: the wrapped embedder.
    """

    def __init__(self, inner: Embedder, max_batch: int = 32, max_wait_ms: float = 2.0, cache_size: int = 1024):
        """Wraps `inner`; the worker thread starts on the first query.

        Args:
            inner: the embedder that encodes.
            max_batch: most questions per encoder call, in [1, 4096].
            max_wait_ms: longest a batch waits for callers that are on their way, in [0, 1000] ms.
            cache_size: question vectors kept (least recently used dropped first), in [0, 10_000_000]; 0 turns
                the cache off.

        Raises:
            ValueError: a limit is out of its range.
        """
        check_positive("max_batch", max_batch, 4096)
        if not 0 <= max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {max_wait_ms}")
        if not 0 <= cache_size <= 10_000_000:
            raise ValueError(f"cache_size must be in [0, 10000000], got {cache_size}")
        self.inner = inner
        self.name = inner.name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._hits = self._misses = self._batches = self._batched = 0
        # Questions waiting for the worker, and callers inside encode_queries that have not queued all of theirs.
        self._queue: list[tuple[str, Future]] = []
        self._cond = threading.Condition()
        self._arriving = 0
        self._worker: threading.Thread | None = None

    @property
    def dim(self) -> int:
        # Read from the wrapped embedder when asked: a remote one learns it from its server's first answer.
        return self.inner.dim

    def __repr__(self) -> str:
        return f"QueryBatcher({self.inner!r}, max_batch={self.max_batch}, cache_size={self.cache_size})"

    def __getattr__(self, name: str):
        # load(), variant, model_name_or_path…: whatever else the wrapped backend offers.
        if name == "inner":  # not set yet (copy/pickle build the object without __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- the Embedder interface -------------------------------------------------------------------------------

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes questions: cached ones at once, the others on the worker thread with other callers' questions."""
        texts = check_texts(texts)
        if not texts:
            return empty_embeddings(self.dim)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pending: list[tuple[int, Future]] = []
        with self._cond:
            self._arriving += 1
        try:
            for i, text in enumerate(texts):
                vector = self._cached(text)
                if vector is None:
                    pending.append((i, self._submit(text)))
                else:
                    out[i] = vector
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify_all()
        for i, future in pending:
            vector = future.result()
            out[i] = vector
            self._remember(texts[i], vector)
        return out

    def stats(self) -> QueryEncoderStats:
        with self._cache_lock:
            return QueryEncoderStats(self._hits, self._misses, self._batches, self._batched, len(self._cache))

    # --- cache ----------------------------------------------------------------------------------------------------

    def _cached(self, text: str) -> np.ndarray | None:
        with self._cache_lock:
            vector = self._cache.get(text) if self.cache_size else None
            if vector is None:
                self._misses += 1
                return None
            self._cache.move_to_end(text)
            self._hits += 1
            return vector

    def _remember(self, text: str, vector: np.ndarray) -> None:
        if not self.cache_size:
            return
        vector = vector.copy()
        vector.setflags(write=False)
        with self._cache_lock:
            self._cache[text] = vector
            self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    # --- worker ---------------------------------------------------------------------------------------------------

    def _submit(self, text: str) -> Future:
        future: Future = Future()
        with self._cond:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="query-encoder", daemon=True)
                self._worker.start()
            self._queue.append((text, future))
            self._cond.notify_all()
        return future

    def _take_batch(self) -> list[tuple[str, Future]]:
        """The next batch: everything queued (up to max_batch), after waiting briefly for callers on their way.

        Questions that arrive while the worker encodes queue up and go together in the next call; besides that, a
        batch waits (at most max_wait_s) only for callers already inside `encode_queries` that have not queued yet,
        so a lone caller never waits.
        """
        with self._cond:
            while not self._queue:
                self._cond.wait()
            deadline = time.monotonic() + self.max_wait_s
            while self._arriving and len(self._queue) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            unique = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = self.inner.encode_queries(unique)
            except BaseException as error:  # noqa: BLE001 - handed to every caller waiting on this batch
                for _, future in batch:
                    future.set_exception(error)
                continue
            with self._cache_lock:
                self._batches += 1
                self._batched += len(batch)
            row = {text: vectors[i] for i, text in enumerate(unique)}
            for text, future in batch:
                future.set_result(row[text])
