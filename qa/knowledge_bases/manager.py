"""The knowledge bases a server serves: each one's service loaded on first use, unloaded when memory runs short,
and questions answered over several of them at once.

Per request, naming a knowledge base costs one dict lookup when it is loaded. Each knowledge base has its own index
folder, so its write, serve and embed locks (`qa.index.locks`) are its own.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from embeddings import Embedder
from qa.config import Settings
from qa.errors import (
    BackendError,
    DocumentNotFoundError,
    IndexNotFoundError,
    IndexWriteError,
    InvalidQueryError,
    KnowledgeBaseEmptyError,
    KnowledgeBaseNotFoundError,
)
from qa.factory import embedder_from_settings, embedder_key, service_from_settings
from qa.index.locks import ServeLock, WriteLock
from qa.index.segments import is_title_block
from qa.knowledge_bases.registry import (
    DEFAULT_KB,
    META_FILE,
    KnowledgeBase,
    KnowledgeBaseRegistry,
    check_name,
)
from qa.search.kb_fusion import KnowledgeBaseHits, fuse_knowledge_bases
from qa.search.retriever import asks_metadata
from qa.service import QAService
from qa.text import normalize
from qa.types import Answer, Hit

logger = logging.getLogger(__name__)

# Rough bytes of memory per character of document text held by a loaded index: the document, its passages, the
# BM25 postings and the title/term tables (Python str of CJK text takes 2-4 bytes a character).
_BYTES_PER_CHAR = 8


@dataclass(frozen=True, slots=True)
class KnowledgeBaseStatus:
    """What /health and /metrics report of one knowledge base (counts are None when it is not loaded)."""

    name: str
    loaded: bool
    documents: int | None
    passages: int | None
    memory_bytes: int = 0


@dataclass
class _Entry:
    service: QAService
    serve_lock: ServeLock | None
    memory_bytes: int = 0
    last_used: float = field(default_factory=time.monotonic)


def memory_estimate(service: QAService) -> int:
    """Estimated bytes a loaded service holds: texts and keyword tables, plus float32 vectors held locally (FAISS)."""
    if not service.loaded:
        return 0
    chars = sum(len(d.text) for d in service.documents())
    vectors = 0 if hasattr(service, "store") else service.passage_count() * service.embedder.dim * 4
    return chars * _BYTES_PER_CHAR + vectors


class KnowledgeBaseManager:
    """Serves the knowledge bases of one settings' data folder (and `default`, the settings' own index)."""

    def __init__(self, settings: Settings, *, serving: bool = True):
        """
        Args:
            serving: as `qa serve` does: hold each loaded knowledge base's serve lock (so `qa index --kb` refuses to
                write it meanwhile) and embed uploads in the background when QA_EMBED_IN_BACKGROUND is set.
        """
        self.settings = settings
        self.registry = KnowledgeBaseRegistry(settings)
        self.budget_bytes = int(settings.kb_memory_budget_mb * 1024 * 1024)
        self._serving = serving
        # One embedder per distinct embedding setting, shared by the knowledge bases that use it: a model is
        # loaded once, and their questions share one batcher and cache.
        self._embedders: dict[tuple, Embedder] = {}
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def attach_default(self, service: QAService) -> None:
        """Serve `service` as `default` (the app opens it at startup; it is never unloaded here)."""
        self._entries[DEFAULT_KB] = _Entry(service, None)
        self._embedders.setdefault(embedder_key(self.settings), service.embedder)

    def clean(self) -> None:
        """Remove what an interrupted create or delete left: temporary folders, trash folders and their collections."""
        temporary, trash = self.registry.leftovers()
        for folder in temporary:
            shutil.rmtree(folder, ignore_errors=True)
        for folder in trash:
            try:
                name = self.registry.trash_name(folder)
                self._drop_collections(KnowledgeBase(name))
            except (OSError, ValueError, KeyError, BackendError) as e:
                logger.warning("cannot finish deleting %s: %s", folder, e)
                continue
            shutil.rmtree(folder, ignore_errors=True)
        if temporary or trash:
            logger.info("removed %d unfinished knowledge base creations and %d deletions", len(temporary),
                        len(trash))

    def close(self) -> None:
        """Stop every knowledge base this manager loaded (not `default`, which the app owns)."""
        with self._lock:
            names = [n for n in self._entries if n != DEFAULT_KB]
        for name in names:
            self._unload(name)

    # --- services -----------------------------------------------------------------------------------------------

    def service(self, name: str, *, allow_empty: bool = False) -> QAService:
        """The loaded service of a knowledge base (loading it on first use).

        Raises:
            InvalidKnowledgeBaseError / KnowledgeBaseNotFoundError: a bad or unknown name.
            KnowledgeBaseEmptyError: it holds no documents yet (unless `allow_empty`, for adding the first one).
        """
        entry = self._entries.get(name)
        if entry is None:
            entry = self._load(name)
        elif name != DEFAULT_KB and not (self.registry.data_dir / name / META_FILE).is_file():
            # Deleted by another process (a `qa serve` worker, `qa kb delete`): one stat per request notices it.
            self._unload(name)
            raise KnowledgeBaseNotFoundError(f"unknown knowledge base {name!r}")
        entry.last_used = time.monotonic()
        service = entry.service
        if not entry.memory_bytes and name != DEFAULT_KB:
            # Empty when loaded: it may hold documents now (its first upload, here or in another process).
            try:
                if not service.loaded:
                    service.load()
                entry.memory_bytes = memory_estimate(service)
                self._fit_budget(keep=name)
            except IndexNotFoundError:
                if not allow_empty:
                    raise KnowledgeBaseEmptyError(f"knowledge base {name!r} has no documents yet; add documents "
                                                  "to it first") from None
        return service

    def loaded(self, name: str) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry.service.loaded

    def _load(self, name: str) -> _Entry:
        check_name(name)
        with self._lock:
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:  # one load per knowledge base; concurrent first requests wait for it
            entry = self._entries.get(name)
            if entry is not None:
                return entry
            kb = self.registry.get(name)  # KnowledgeBaseNotFoundError for an unknown name
            settings = self.registry.settings_for(kb)
            serve_lock = ServeLock(settings.index_dir) if self._serving else None
            if serve_lock is not None:
                try:
                    serve_lock.hold()
                except IndexWriteError as e:
                    logger.warning("cannot mark %s as served: %s", settings.index_dir, e)
            key = embedder_key(settings)
            with self._lock:
                embedder = self._embedders.get(key)
                if embedder is None:
                    embedder = self._embedders[key] = embedder_from_settings(settings)
            service = service_from_settings(settings, serving=self._serving, embedder=embedder,
                                            create_index_dir=name == DEFAULT_KB)
            try:
                service.load()
            except IndexNotFoundError:
                pass  # an empty knowledge base: its first document builds the index
            except Exception:
                if serve_lock is not None:
                    serve_lock.release()
                raise
            entry = _Entry(service, serve_lock, memory_estimate(service))
            with self._lock:
                self._entries[name] = entry
            logger.info("knowledge base %s loaded (~%d MB)", name, entry.memory_bytes >> 20)
        self._fit_budget(keep=name)
        return entry

    def _fit_budget(self, keep: str) -> None:
        """Unload the least recently used knowledge bases while the loaded ones exceed the memory budget."""
        while True:
            with self._lock:
                total = sum(e.memory_bytes for e in self._entries.values())
                spare = [(e.last_used, n) for n, e in self._entries.items() if n not in (DEFAULT_KB, keep)]
            if total <= self.budget_bytes or not spare:
                return
            self._unload(min(spare)[1])

    def _unload(self, name: str) -> None:
        # A request still holding the service keeps reading its snapshot; the next request loads it again.
        with self._lock:
            entry = self._entries.pop(name, None)
        if entry is None:
            return
        entry.service.close()
        if entry.serve_lock is not None:
            entry.serve_lock.release()
        logger.info("knowledge base %s unloaded", name)

    # --- knowledge bases ----------------------------------------------------------------------------------------

    def create(self, name: str, description: str = "", embedder: str | None = None,
               model: str | None = None) -> KnowledgeBase:
        return self.registry.create(name, description, embedder, model)

    def delete(self, name: str) -> KnowledgeBase:
        """Delete a knowledge base: its folder and its Milvus collections, nothing else.

        The folder is first renamed to a trash name (the name is then free and the knowledge base gone); a crash
        after that is finished by `clean` at the next start. The rename waits for a change being written to it (an
        upload) to finish, holding the write lock against the next; a change that waited meets a deleted folder
        (IndexGoneError), so nothing is written into the trash or makes the folder again.

        Raises:
            IndexBusyError: a change kept the knowledge base for the write-lock timeout.
        """
        kb = self.registry.get(name)
        settings = self.registry.settings_for(kb)
        lock = WriteLock(settings.index_dir, settings.write_lock_timeout_s, create=False)
        with lock if settings.index_dir.is_dir() else nullcontext():
            trash = self.registry.detach(name)
        self._unload(name)
        self._drop_collections(kb)
        shutil.rmtree(trash, ignore_errors=True)
        logger.info("knowledge base %s deleted", name)
        return kb

    def _drop_collections(self, kb: KnowledgeBase) -> None:
        if self.settings.backend != "milvus" or kb.name == DEFAULT_KB:
            return
        from qa.index.milvus_store import MilvusStore

        settings = self.registry.settings_for(kb)
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        store = MilvusStore(settings.milvus_uri, 1, collection=settings.milvus_collection, token=token,
                            db_name=settings.milvus_db)
        try:
            store.drop()
        finally:
            store.close()

    def status(self, names: Sequence[str] | None = None) -> list[KnowledgeBaseStatus]:
        """Documents and passages of the loaded knowledge bases; the others are reported as not loaded."""
        result = []
        for kb in self.registry.list():
            if names is not None and kb.name not in names:
                continue
            entry = self._entries.get(kb.name)
            if entry is None or not entry.service.loaded:
                result.append(KnowledgeBaseStatus(kb.name, entry is not None, None if entry is None else 0,
                                                  None if entry is None else 0))
                continue
            service = entry.service
            result.append(KnowledgeBaseStatus(kb.name, True, len(service.documents()), service.passage_count(),
                                              entry.memory_bytes))
        return result

    # --- answering over several -----------------------------------------------------------------------------------

    def ask(self, names: Sequence[str], query: str, top_k: int = 5, mode: str = "hybrid",
            doc_ids: list[str] | None = None) -> Answer:
        """Answer from several knowledge bases: hits fused with comparable scores, each naming its knowledge base.

        The answer sentence is the one its own knowledge base chose, from the best-ranked knowledge base whose
        answer passage made the fused list. Empty knowledge bases are skipped; `doc_ids` apply where they exist.

        Raises:
            KnowledgeBaseNotFoundError / KnowledgeBaseEmptyError: an unknown name, or every one named is empty.
            DocumentNotFoundError: a document id in none of them.
        """
        names = list(dict.fromkeys(names))
        if not names:
            raise InvalidQueryError("name at least one knowledge base")
        services: list[tuple[str, QAService, list[str] | None]] = []
        for name in names:
            try:
                service = self.service(name)
            except KnowledgeBaseEmptyError:
                continue
            own = None
            if doc_ids:
                known = set(service.snapshot.data.documents)
                own = [d for d in doc_ids if d in known]
                if not own:
                    continue
            services.append((name, service, own))
        if doc_ids:
            found = {d for _, _, own in services for d in own or ()}
            missing = [d for d in doc_ids if d not in found]
            if missing:
                raise DocumentNotFoundError(f"unknown document id {missing[0]!r}")
        if not services:
            raise KnowledgeBaseEmptyError(f"the knowledge bases {', '.join(names)} hold no documents yet")
        if len(services) == 1:
            name, service, own = services[0]
            answer = service.ask(query, top_k=top_k, mode=mode, doc_ids=own)
            return replace(answer, hits=tuple(replace(h, knowledge_base=name) for h in answer.hits))
        return self._ask_many(services, query, top_k, mode)

    def _ask_many(self, services: list[tuple[str, QAService, list[str] | None]], query: str, top_k: int,
                  mode: str) -> Answer:
        retrieval = services[0][1].retrieval
        answers: dict[str, Answer] = {}
        candidates: list[KnowledgeBaseHits] = []
        for name, service, own in services:
            # Fusing needs each one's candidates, not only its top_k: as many as one index would fuse.
            answers[name], hits = service.ask_with_candidates(query, top_k=top_k, mode=mode, doc_ids=own)
            data = service.snapshot.data
            titles = frozenset(h.passage.passage_id for h in hits
                               if is_title_block(h.passage, data.documents.get(h.passage.doc_id)))
            scale = _keyword_scale(service, query, hits)
            candidates.append(KnowledgeBaseHits(name, tuple(hits), titles, service.embedder.name, scale))
        fused = fuse_knowledge_bases(candidates, top_k, mode, retrieval.fusion, retrieval.bm25_weight,
                                     retrieval.dense_weight, demote_titles=not asks_metadata(query))
        # The answer spans each knowledge base marked in its own top hits.
        spans = {(name, h.passage.passage_id): h.answer for name, a in answers.items() for h in a.hits}
        fused = [replace(h, answer=spans.get((h.knowledge_base, h.passage.passage_id))) for h in fused]
        for rank, hit in enumerate(fused):
            answer = answers[hit.knowledge_base or ""]
            if (answer.answerable and answer.source is not None
                    and answer.hits[answer.source].passage.passage_id == hit.passage.passage_id):
                exact = answer.exact
                exact = replace(exact, hit=rank) if exact is not None and exact.hit == answer.source else None
                return Answer(answer.query, answer.text, True, tuple(fused), answer.confidence, rank, exact)
        unanswered = [a for a in answers.values() if not a.answerable]
        text = unanswered[0].text if unanswered else "不知道：文档中没有相关内容。"
        confidence = max((a.confidence for a in answers.values()), default=0.0)
        return Answer(query.strip(), text, False, tuple(fused), confidence)


def _keyword_scale(service: QAService, query: str, hits: Sequence[Hit]) -> float:
    """What divides a knowledge base's BM25 scores so that they compare with another's.

    Raw BM25 grows with the size of the collection (its IDF is log N / n): the same passage scored 104.9 among the
    sample corpus and 40.9 among three documents. Its best keyword hit is mapped to the IDF-weighted share of the
    question's terms that hit contains (0..1, computed with the knowledge base's own term weights, so the scale
    cancels out), and the other hits keep their BM25 ratio to it.
    """
    best = max((h for h in hits if h.keyword_score), key=lambda h: h.keyword_score or 0.0, default=None)
    if best is None:
        return 1.0
    snapshot = service.snapshot
    weights = snapshot.weights
    coverage = weights.coverage(weights.terms(normalize(query)), snapshot.index_text(best.passage))
    return (best.keyword_score or 1.0) / coverage if coverage > 0 else 1.0
