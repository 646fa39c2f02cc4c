"""The question-answering service: one index folder, one embedder, search and document changes.

The CLI and the web app both drive this class. Reads use an immutable snapshot (index + retriever) that a write
replaces in one assignment, so a search running during an upload or delete sees either the old or the new index,
never a mix.

With `defer_vectors`, a change is saved (and searchable by keywords) before its passages are embedded; their
vectors are filled in afterwards, chunk by chunk, each chunk a new version: by a background thread
(`background_vectors`, what `qa serve` does) or by `complete_vectors` (what `qa index --wait` does). Until a passage
has its vector it is ranked by keywords only. Every encoded batch is in the embedding cache at once, so a restart,
even after `kill -9`, continues where it stopped.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from embeddings import Embedder, EmbeddingCache, QueryEncoderStats
from qa.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
    NoDocumentsError,
)
from qa.index.build import (
    add_documents,
    add_vectors,
    build_index,
    dead_fraction,
    encode_rows,
    remove_documents,
)
from qa.index.locks import EmbedLock, WriteLock
from qa.index.segments import IndexConfig, IndexData, is_title_block, passage_index_text
from qa.index.versions import live_version_name, load_index, open_cache, save_index
from qa.index.vocabulary import Vocabulary, learn_segment
from qa.ingest.reader import IngestReport, load_documents
from qa.search.answer import (
    RANK_PRIOR,
    RERANKED_RANK_PRIOR,
    SIMILARITY_FLOORS,
    Evidence,
    TermWeights,
    build_answer,
)
from qa.search.retriever import HybridRetriever, RetrievalConfig, SearchIndex
from qa.search.structure import outline_answer
from qa.types import Answer, Document, DocumentMeta, Hit, Passage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What `QAService.index_paths` did."""

    documents: int
    passages: int
    added: int
    removed: int
    unchanged: bool
    failures: tuple = ()


# Tokenizers whose bigrams are exactly the `char2` terms of TermWeights, so the BM25 postings give their counts.
_CHAR_TOKENIZERS = frozenset({"char", "char2", "char123"})


# Past this share of deleted rows a change rebuilds the index from cached embeddings instead of adding a segment.
COMPACT_DEAD_FRACTION = 0.5
# Passages embedded between two saves of deferred vectors: each save writes the vector file, so not every batch.
VECTOR_CHUNK = 256
# Passages per encoder call in the background: questions wait for the call in progress (one model, one call at a
# time), and 32 passages took ~6 s on 2 cores (a search during it waited as long); 4 take under a second.
BACKGROUND_BATCH = 4


@dataclass(frozen=True, slots=True)
class VectorProgress:
    """Passages that have their vector, of all live passages (of the index, or of one document)."""

    done: int
    total: int


@dataclass
class _Snapshot:
    data: SearchIndex
    retriever: HybridRetriever
    weights: TermWeights

    def index_text(self, passage: Passage) -> str:
        return passage_index_text(passage, self.data.documents.get(passage.doc_id))

    @cached_property
    def pending(self) -> np.ndarray:
        """Live rows without a vector yet, sorted (always empty on Milvus, whose writes embed at once)."""
        if isinstance(self.data, IndexData):
            return self.data.pending_rows()
        return np.empty(0, dtype=np.int64)

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The words learned from this index's documents (kept per segment; Milvus: learned from its texts here)."""
        if isinstance(self.data, IndexData):
            return self.data.vocabulary
        docs = list(self.data.documents.values())
        return Vocabulary(learn_segment([d.text for d in docs], range(len(docs))).live())



def _term_weights(data: SearchIndex) -> TermWeights:
    """The index's term weights: from its BM25 postings when they count the same bigrams, else read off its texts."""
    if isinstance(data, IndexData) and data.config.tokenizer in _CHAR_TOKENIZERS:
        return TermWeights.from_doc_freq(data.bm25.doc_freq, data.passage_count)
    return TermWeights(data.index_texts())


class QAService:
    """Answers questions over the documents of one index folder."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        retrieval: RetrievalConfig | None = None,
        index_config: IndexConfig | None = None,
        batch_size: int = 32,
        write_lock_timeout_s: float = 30.0,
        defer_vectors: bool = False,
        background_vectors: bool = False,
        create_index_dir: bool = True,
    ):
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.retrieval = retrieval or RetrievalConfig()
        self.index_config = index_config or IndexConfig()
        self.batch_size = batch_size
        self.write_lock_timeout_s = write_lock_timeout_s
        # False for a knowledge base's folder, which its registry makes: a write after its deletion must not make
        # it again (IndexGoneError instead).
        self.create_index_dir = create_index_dir
        self._snapshot: _Snapshot | None = None
        # Writers of this process queue here; WriteLock then orders them with other processes' writers.
        self._write_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._unloadable: str | None = None  # a live version that failed to load; not retried on every request
        self.defer_vectors = defer_vectors
        self.background_vectors = background_vectors
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._stop = threading.Event()

    # --- loading and building -----------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> _Snapshot:
        """The served index, after picking up a version another process made live (see `refresh`)."""
        if self._snapshot is None:
            raise IndexNotFoundError(f"no index loaded from {self.index_dir}")
        self.refresh()
        return self._snapshot

    def _newer_version(self) -> str | None:
        """The version CURRENT names when it is not the one served (None: up to date, or nothing to follow)."""
        served = getattr(self._snapshot.data, "version", "") if self._snapshot is not None else ""
        if not served:  # Milvus, or an index not saved yet: no version folders to follow
            return None
        live = live_version_name(self.index_dir)
        return live if live is not None and live != served else None

    def refresh(self) -> bool:
        """Serve the version another process (a `qa serve` worker) made live, if CURRENT names a newer one.

        Costs one small file read when nothing changed. After a change, the first request loads the new version and
        requests arriving meanwhile wait for it, so every answer given after a change was acknowledged includes it,
        whichever worker gives it; none sees a mix. A live version that cannot be loaded (corrupt) is logged once and
        the old one stays served.
        """
        live = self._newer_version()
        if live is None or live == self._unloadable:
            return False
        with self._reload_lock:
            try:
                self._load_newer()
                return True
            except (IndexCorruptError, IndexMismatchError, IndexNotFoundError) as e:
                self._unloadable = live
                logger.error("cannot load index version %s from %s (%s); still serving %s", live, self.index_dir,
                             e, getattr(self._snapshot.data, "version", "?"))
                return False

    def _load_newer(self) -> None:
        """Load the live version if it is not the served one."""
        if self._newer_version() is not None:
            self.load()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The one writer of the index folder, across threads and processes, holding the newest version.

        Raises:
            IndexBusyError: another process kept the folder for `write_lock_timeout_s` seconds.
            IndexGoneError: the folder was deleted (with `create_index_dir` false: a knowledge base deleted).
        """
        with self._write_lock, WriteLock(self.index_dir, self.write_lock_timeout_s, create=self.create_index_dir):
            # Another process may have written since this one loaded: change its version, never an older one.
            with self._reload_lock:
                self._load_newer()
            yield

    def _publish(self, data: SearchIndex) -> None:
        # Computed here, by the writer, before the swap: otherwise the first searches after a change would wait on it.
        # The retriever re-ranks with the same weights the answer reads sentences with.
        weights = _term_weights(data)
        snapshot = _Snapshot(data, HybridRetriever(data, self.embedder, self.retrieval, weights), weights)
        self._snapshot = snapshot
        if len(snapshot.pending) and self.background_vectors:
            self._start_vector_worker()

    def load(self, warn: bool = True) -> None:
        """Load the live version (raises IndexNotFoundError/IndexMismatchError/IndexCorruptError).

        A version that another process replaces, and removes, while this one reads it is not an error: the newer
        version is read instead (a few times at most). `warn`: log when it was built with other settings (not when
        the caller is about to rebuild it).
        """
        for _ in range(5):
            live = live_version_name(self.index_dir)
            try:
                self._publish(load_index(self.index_dir, self.embedder.name, self.embedder.dim))
                if warn:
                    self._warn_if_built_otherwise()
                return
            except (IndexCorruptError, IndexNotFoundError):
                if live is None or live_version_name(self.index_dir) == live:
                    raise  # nothing replaced it: the index really is missing or broken
        self._publish(load_index(self.index_dir, self.embedder.name, self.embedder.dim))

    def _warn_if_built_otherwise(self) -> None:
        """An index built with other settings (e.g. before sentence vectors) is served as it is; say how to update."""
        # The index just published, not `snapshot`: that refreshes, and a refresh may be what is loading (it holds
        # the reload lock, which is not reentrant).
        data = self._snapshot.data
        if isinstance(data, IndexData) and data.config != self.index_config:
            logger.warning("index in %s was built with other settings (sentence vectors: %s, titles in keyword "
                           "search: %s; configured: %s, %s); it is served as built: run `qa index` to rebuild it",
                           self.index_dir, data.config.sentence_vectors, data.config.keyword_titles,
                           self.index_config.sentence_vectors, self.index_config.keyword_titles)

    def _save(self, change: Callable[[EmbeddingCache], IndexData]) -> IndexData:
        """Compute a new index with `change` (given the embedding cache) and save it as the live version.

        The result is not yet published in memory.

        Raises:
            IndexWriteError: the index folder cannot be written (disk full, read-only, not a folder); nothing
                changed on disk or in memory.
        """
        try:
            cache = open_cache(self.index_dir)
            try:
                data = change(cache)
            finally:
                cache.close()
            save_index(data, self.index_dir)
        except (OSError, sqlite3.Error) as e:
            raise IndexWriteError.from_error(self.index_dir, e) from e
        return data

    # --- the three writes a backend provides: is the index reusable, rebuild it, change it --------------------------

    def _reusable(self, current: IndexData) -> bool:
        """Whether `current` was built with this service's settings (else a change means a rebuild)."""
        if current.config == self.index_config:
            return True
        logger.warning("rebuilding the index in %s with the configured settings (sentence vectors: %s, titles in "
                       "keyword search: %s)", self.index_dir, self.index_config.sentence_vectors,
                       self.index_config.keyword_titles)
        return False

    def _rebuild(self, documents: list[Document], progress: Callable[[int], None] | None) -> IndexData:
        """A new index holding exactly `documents`, saved as the live version (not yet published)."""
        return self._save(lambda cache: build_index(documents, self.embedder, self.index_config, cache, progress,
                                                    self.batch_size, embed=not self.defer_vectors))

    def _apply(self, current: IndexData, add: list[Document], remove: list[str],
               progress: Callable[[int], None] | None = None) -> IndexData:
        """Apply removals and additions as new segments; rebuild (from cached embeddings) once half the rows are dead."""

        def change(cache: EmbeddingCache) -> IndexData:
            data = remove_documents(current, remove) if remove else current
            if dead_fraction(data) > COMPACT_DEAD_FRACTION:
                docs = [*data.documents.values(), *add]
                return build_index(docs, self.embedder, self.index_config, cache, progress, self.batch_size,
                                   embed=not self.defer_vectors)
            if add:
                data = add_documents(data, add, self.embedder, cache, progress, self.batch_size,
                                     embed=not self.defer_vectors)
            return data

        return self._save(change)

    def index_paths(
        self,
        paths: list[Path],
        *,
        add: bool = False,
        rebuild: bool = False,
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> IndexReport:
        """Make the index hold the documents under `paths` (or, with `add`, add them to what it holds).

        Unchanged documents keep their cached embeddings, so re-running on the same files is near-instant.

        Raises:
            NoDocumentsError: nothing under `paths` could be read.
        """
        report: IngestReport = load_documents(paths)
        with self._writing():
            current = None
            if not rebuild:
                try:
                    self.load(warn=False)  # built with other settings: `_reusable` says so and it is rebuilt
                    current = self.snapshot.data
                except IndexNotFoundError:
                    current = None
            new_docs = {d.doc_id: d for d in report.documents}
            if add and current is not None:
                new_docs = {**current.documents, **new_docs}
            old_ids = set(current.documents) if current else set()
            added = [d for doc_id, d in new_docs.items() if doc_id not in old_ids]
            removed = sorted(old_ids - set(new_docs))
            if current is not None and self._reusable(current):
                if not added and not removed:
                    return IndexReport(len(new_docs), current.passage_count, 0, 0, True, report.failures)
                if on_total:
                    on_total(len(added))
                data = self._apply(current, added, removed, progress)
            else:
                if on_total:
                    on_total(len(new_docs))
                data = self._rebuild(list(new_docs.values()), progress)
            self._publish(data)
        return IndexReport(len(data.documents), data.passage_count, len(added), len(removed), False,
                           report.failures)

    def index_documents(self, documents: list[Document], progress: Callable[[int], None] | None = None) -> None:
        """Make the index hold exactly `documents` (already read, e.g. from a BEIR corpus)."""
        if not documents:
            raise NoDocumentsError("no documents to index")
        with self._writing():
            self._publish(self._rebuild(list({d.doc_id: d for d in documents}.values()), progress))

    def open(self, corpus: list[Path], progress: Callable[[int], None] | None = None) -> None:
        """Load the saved index, or build it from `corpus` when there is none yet."""
        try:
            self.load()
        except IndexNotFoundError:
            self.index_paths(corpus, progress=progress)

    # --- deferred vectors -----------------------------------------------------------------------------------------

    def vector_progress(self, doc_id: str | None = None) -> VectorProgress:
        """How many live passages (of `doc_id`, or of the index) have their vector."""
        snapshot = self.snapshot
        if doc_id is None:
            total = snapshot.data.passage_count
            return VectorProgress(total - len(snapshot.pending), total)
        rows = snapshot.data.doc_rows.get(doc_id, ())
        waiting = int(np.isin(np.asarray(rows, dtype=np.int64), snapshot.pending).sum()) if len(snapshot.pending) else 0
        return VectorProgress(len(rows) - waiting, len(rows))

    def fill_vectors(self, progress: Callable[[int], None] | None = None, chunk: int = VECTOR_CHUNK,
                     batch_size: int | None = None) -> int:
        """Embed up to `chunk` passages that have no vector yet and save them as a new version; returns how many.

        The encoding runs without the write lock (searches and other changes go on); only adding the vectors and
        saving takes it, and it then adds them to the newest version, skipping passages deleted meanwhile.
        """
        snapshot = self.snapshot
        data, pending = snapshot.data, snapshot.pending
        if not len(pending) or not isinstance(data, IndexData):
            return 0
        # A trained vector index type learns its codes from its first add: give it every passage at once.
        rows = pending if data.vectors.needs_training else pending[:chunk]
        texts = [data.index_text(int(row)) for row in rows]
        sentences = [data.sentence_texts(int(row)) for row in rows] if data.sentences is not None else None
        with open_cache(self.index_dir) as cache:
            vectors = encode_rows(rows, sentences, texts, self.embedder, cache,
                                  batch_size=batch_size or self.batch_size, progress=progress)
        with self._writing():
            current = self.snapshot.data
            still = np.intersect1d(rows, self.snapshot.pending)
            if len(still):
                chosen = vectors.subset(still)
                self._publish(self._save(lambda _cache: add_vectors(current, chosen)))
        return len(rows)

    def complete_vectors(self, progress: Callable[[int], None] | None = None) -> None:
        """Embed every passage that has no vector yet, in this thread (`qa index --wait`, `qa ask`, `qa eval`)."""
        while self.fill_vectors(progress):
            pass

    def _start_vector_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None and not self._stop.is_set():
                self._worker = threading.Thread(target=self._vector_worker, name="vector-worker", daemon=True)
                self._worker.start()

    def _vector_worker(self) -> None:
        """Fill in vectors until none is missing; a failing embedder is retried with a growing pause.

        One process embeds (the holder of the folder's embed lock); in the others this thread only waits and
        follows the versions that process saves, taking over if it stops.
        """
        embed_lock = EmbedLock(self.index_dir)
        try:
            self._fill_while_pending(embed_lock)
        finally:
            embed_lock.release()
            with self._worker_lock:
                if self._worker is threading.current_thread():
                    self._worker = None

    def _fill_while_pending(self, embed_lock: EmbedLock) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                if not embed_lock.try_acquire():
                    if self._stop.wait(2.0):
                        return
                    self.refresh()
                elif self.fill_vectors(batch_size=min(BACKGROUND_BATCH, self.batch_size)):
                    pause = 1.0
                    continue
            except Exception as e:  # noqa: BLE001 - an embedder or disk failure must not end the filling
                logger.error("embedding passages in the background failed (%s); trying again in %.0f s", e, pause)
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, 60.0)
                continue
            with self._worker_lock:
                # Re-checked under the lock a publish takes to start a worker: no change is left unfilled.
                if self._snapshot is None or not len(self._snapshot.pending):
                    self._worker = None
                    return

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background vector worker (what it embedded is saved or cached; a restart continues)."""
        self._stop.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # --- reading ------------------------------------------------------------------------------------------------

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None) -> list[Hit]:
        return self.snapshot.retriever.search(query, top_k=top_k, mode=mode, doc_ids=doc_ids)

    def ask(self, query: str, top_k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None) -> Answer:
        """Search, then highlight the answering sentences and decide whether the documents answer the question."""
        snapshot = self.snapshot
        hits = snapshot.retriever.search(query, top_k=top_k, mode=mode, doc_ids=doc_ids)
        return self._answer(snapshot, query, hits, mode, doc_ids)

    def ask_with_candidates(self, query: str, top_k: int = 5, mode: str = "hybrid",
                            doc_ids: list[str] | None = None) -> tuple[Answer, list[Hit]]:
        """`ask`, and every candidate its ranking fused (not only the top_k), from one search of one snapshot.

        The retriever fuses `retrieval.candidates` (or top_k) candidates and cuts the ranking last, so the first
        top_k of this list are `ask`'s hits and the answer is `ask`'s; fusing several indexes needs the whole list.
        """
        snapshot = self.snapshot
        n = min(max(self.retrieval.candidates, top_k), self.retrieval.max_top_k)
        ranked = snapshot.retriever.search(query, top_k=n, mode=mode, doc_ids=doc_ids)
        return self._answer(snapshot, query, ranked[:top_k], mode, doc_ids), ranked

    def _answer(self, snapshot: _Snapshot, query: str, hits: list[Hit], mode: str,
                doc_ids: list[str] | None) -> Answer:
        # How a document or section is organised (`讲了哪几点`): its outline answers, not a sentence.
        outline = outline_answer(query.strip(), hits, snapshot.data, doc_ids)
        if outline is not None:
            return outline

        def top_similarity() -> float | None:
            known = [h.dense_score for h in hits if h.dense_score is not None]
            if mode != "bm25":
                return max(known, default=None)
            best = snapshot.retriever.search(query, top_k=1, mode="dense", doc_ids=doc_ids)
            return best[0].dense_score if best else None

        def title_block(passage: Passage) -> DocumentMeta | None:
            doc = snapshot.data.documents.get(passage.doc_id)
            return doc.meta if doc is not None and is_title_block(passage, doc) else None

        evidence = Evidence(snapshot.weights, snapshot.index_text,
                            SIMILARITY_FLOORS.get(self.embedder.name), top_similarity, title_block)
        # Hybrid hits were re-ranked by their best sentences: the answer trusts that order more.
        reranked = mode == "hybrid" and self.retrieval.rerank_weight > 0 and self.retrieval.rerank_depth > 0
        return build_answer(query.strip(), hits, evidence, RERANKED_RANK_PRIOR if reranked else RANK_PRIOR)

    def vocabulary(self) -> Vocabulary:
        """The words learned from the served index's documents, for query analysis (follow-ups)."""
        return self.snapshot.vocabulary

    def query_encoder_stats(self) -> QueryEncoderStats | None:
        """Question-vector cache and batching counters, when the embedder batches questions (see the factory)."""
        stats = getattr(self.embedder, "stats", None)
        return stats() if callable(stats) else None

    @property
    def version(self) -> str:
        """The served index version ("" for a backend without versions, such as Milvus)."""
        return getattr(self.snapshot.data, "version", "")

    def documents(self) -> list[Document]:
        return list(self.snapshot.data.documents.values())

    def document(self, doc_id: str) -> Document:
        try:
            return self.snapshot.data.documents[doc_id]
        except KeyError:
            raise DocumentNotFoundError(f"unknown document id {doc_id!r}") from None

    def passage_count(self, doc_id: str | None = None) -> int:
        data = self.snapshot.data
        return data.passage_count if doc_id is None else len(data.doc_rows.get(doc_id, ()))

    # --- writing ------------------------------------------------------------------------------------------------

    def add_document(self, doc: Document) -> bool:
        """Add a document and persist the index; returns False when the same content is already indexed."""
        with self._writing():
            if self._snapshot is None:
                try:
                    self.load()
                except IndexNotFoundError:
                    # An empty index (a new knowledge base): its first document builds it.
                    self._publish(self._rebuild([doc], None))
                    return True
            current = self.snapshot.data
            if doc.doc_id in current.documents:
                return False
            self._publish(self._apply(current, [doc], []))
            return True

    def delete_document(self, doc_id: str) -> Document:
        """Remove a document's passages from the index and the store, and persist.

        Raises:
            DocumentNotFoundError: no such document.
            NoDocumentsError: it is the last document (an index cannot be empty).
        """
        with self._writing():
            current = self.snapshot.data
            if doc_id not in current.documents:
                raise DocumentNotFoundError(f"unknown document id {doc_id!r}")
            if len(current.documents) == 1:
                raise NoDocumentsError("cannot delete the last document: an index needs at least one")
            self._publish(self._apply(current, [], [doc_id]))
            return current.documents[doc_id]
