"""The question-answering service: one index folder, one embedder, search and document changes.

The CLI and the web app both drive this class. Reads use an immutable snapshot (index + retriever) that a write
replaces in one assignment, so a search running during an upload or delete sees either the old or the new index,
never a mix.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from embeddings import Embedder
from qa.answer import SIMILARITY_FLOORS, Evidence, TermWeights, build_answer
from qa.chunking import ChunkingConfig
from qa.config import Settings
from qa.errors import DocumentNotFoundError, IndexNotFoundError, NoDocumentsError
from qa.ingest import IngestReport, load_documents
from qa.retriever import HybridRetriever, RetrievalConfig
from qa.store import IndexConfig, IndexData, IndexWriteError, build_index, load_index, open_cache, save_index
from qa.types import Answer, Document, Hit


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What `QAService.index_paths` did."""

    documents: int
    passages: int
    added: int
    removed: int
    unchanged: bool
    failures: tuple = ()


@dataclass
class _Snapshot:
    data: IndexData
    retriever: HybridRetriever

    @cached_property
    def index_texts(self) -> dict[str, str]:
        return dict(zip((p.passage_id for p in self.data.passages), self.data.index_texts()))

    @cached_property
    def weights(self) -> TermWeights:
        return TermWeights(self.index_texts.values())


class QAService:
    """Answers questions over the documents of one index folder."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        retrieval: RetrievalConfig | None = None,
        index_config: IndexConfig | None = None,
        batch_size: int = 32,
    ):
        self.index_dir = Path(index_dir)
        self.embedder = embedder
        self.retrieval = retrieval or RetrievalConfig()
        self.index_config = index_config or IndexConfig()
        self.batch_size = batch_size
        self._snapshot: _Snapshot | None = None
        self._write_lock = threading.Lock()

    # --- loading and building -----------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> _Snapshot:
        if self._snapshot is None:
            raise IndexNotFoundError(f"no index loaded from {self.index_dir}")
        return self._snapshot

    def _publish(self, data: IndexData) -> None:
        snapshot = _Snapshot(data, HybridRetriever(data, self.embedder, self.retrieval))
        # Computed here, by the writer, before the swap: otherwise the first searches after every change would
        # compute them (once each, but all waiting on one another) while serving requests.
        snapshot.index_texts  # noqa: B018
        snapshot.weights  # noqa: B018
        self._snapshot = snapshot

    def load(self) -> None:
        """Load the saved index (raises IndexNotFoundError/IndexMismatchError/IndexCorruptError)."""
        self._publish(load_index(self.index_dir, self.embedder.name, self.embedder.dim))

    def _build_and_save(self, documents: list[Document], progress: Callable[[int], None] | None) -> IndexData:
        """Build an index of `documents` and save it as the new live version (not yet published in memory).

        Raises:
            IndexWriteError: the index folder cannot be written (disk full, read-only, not a folder); nothing
                changed on disk or in memory.
        """
        try:
            cache = open_cache(self.index_dir)
            try:
                data = build_index(documents, self.embedder, self.index_config, cache, progress, self.batch_size)
            finally:
                cache.close()
            save_index(data, self.index_dir)
        except (OSError, sqlite3.Error) as e:
            raise IndexWriteError.from_error(self.index_dir, e) from e
        return data

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
        with self._write_lock:
            current = None
            if not rebuild:
                try:
                    self.load()
                    current = self.snapshot.data
                except IndexNotFoundError:
                    current = None
            new_docs = {d.doc_id: d for d in report.documents}
            if add and current is not None:
                new_docs = {**current.documents, **new_docs}
            if (current is not None and set(current.documents) == set(new_docs)
                    and current.config == self.index_config):
                return IndexReport(len(new_docs), len(current.passages), 0, 0, True, report.failures)
            old_ids = set(current.documents) if current else set()
            if on_total:
                on_total(sum(1 for _ in new_docs))
            data = self._build_and_save(list(new_docs.values()), progress)
            self._publish(data)
        return IndexReport(len(data.documents), len(data.passages), len(set(new_docs) - old_ids),
                           len(old_ids - set(new_docs)), False, report.failures)

    def index_documents(self, documents: list[Document], progress: Callable[[int], None] | None = None) -> None:
        """Make the index hold exactly `documents` (already read, e.g. from a BEIR corpus)."""
        if not documents:
            raise NoDocumentsError("no documents to index")
        with self._write_lock:
            self._publish(self._build_and_save(documents, progress))

    def open(self, corpus: list[Path], progress: Callable[[int], None] | None = None) -> None:
        """Load the saved index, or build it from `corpus` when there is none yet."""
        try:
            self.load()
        except IndexNotFoundError:
            self.index_paths(corpus, progress=progress)

    # --- reading ------------------------------------------------------------------------------------------------

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None) -> list[Hit]:
        return self.snapshot.retriever.search(query, top_k=top_k, mode=mode, doc_ids=doc_ids)

    def ask(self, query: str, top_k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None) -> Answer:
        """Search, then highlight the answering sentences and decide whether the documents answer the question."""
        snapshot = self.snapshot
        hits = snapshot.retriever.search(query, top_k=top_k, mode=mode, doc_ids=doc_ids)

        def top_similarity() -> float | None:
            known = [h.dense_score for h in hits if h.dense_score is not None]
            if mode != "bm25":
                return max(known, default=None)
            best = snapshot.retriever.search(query, top_k=1, mode="dense", doc_ids=doc_ids)
            return best[0].dense_score if best else None

        evidence = Evidence(snapshot.weights, lambda p: snapshot.index_texts[p.passage_id],
                            SIMILARITY_FLOORS.get(self.embedder.name), top_similarity)
        return build_answer(query.strip(), hits, evidence)

    def documents(self) -> list[Document]:
        return list(self.snapshot.data.documents.values())

    def document(self, doc_id: str) -> Document:
        try:
            return self.snapshot.data.documents[doc_id]
        except KeyError:
            raise DocumentNotFoundError(f"unknown document id {doc_id!r}") from None

    def passage_count(self, doc_id: str | None = None) -> int:
        data = self.snapshot.data
        return len(data.passages) if doc_id is None else len(data.doc_rows.get(doc_id, ()))

    # --- writing ------------------------------------------------------------------------------------------------

    def add_document(self, doc: Document) -> bool:
        """Add a document and persist the index; returns False when the same content is already indexed."""
        with self._write_lock:
            current = self.snapshot.data
            if doc.doc_id in current.documents:
                return False
            data = self._build_and_save([*current.documents.values(), doc], None)
            self._publish(data)
            return True

    def delete_document(self, doc_id: str) -> Document:
        """Remove a document's passages from the index and the store, and persist.

        Raises:
            DocumentNotFoundError: no such document.
            NoDocumentsError: it is the last document (an index cannot be empty).
        """
        with self._write_lock:
            current = self.snapshot.data
            if doc_id not in current.documents:
                raise DocumentNotFoundError(f"unknown document id {doc_id!r}")
            remaining = [d for d in current.documents.values() if d.doc_id != doc_id]
            if not remaining:
                raise NoDocumentsError("cannot delete the last document: an index needs at least one")
            data = self._build_and_save(remaining, None)
            self._publish(data)
            return current.documents[doc_id]


def service_from_settings(settings: Settings) -> QAService:
    """Wire a service from settings: the edges (CLI, web app) call this, core classes never read settings."""
    from embeddings import create_embedder

    if settings.embedder == "sentence-transformers":
        embedder = create_embedder("sentence-transformers", model_name_or_path=settings.model)
    else:
        embedder = create_embedder(settings.embedder)
    retrieval = RetrievalConfig(
        fusion=settings.fusion,
        bm25_weight=settings.bm25_weight,
        dense_weight=settings.dense_weight,
        candidates=settings.candidates,
        max_top_k=settings.max_top_k,
        max_query_chars=settings.max_query_chars,
    )
    index_config = IndexConfig(ChunkingConfig(settings.max_chars, settings.min_chars),
                               vector_index=settings.vector_index)
    return QAService(settings.index_dir, embedder, retrieval, index_config, settings.embed_batch_size)
