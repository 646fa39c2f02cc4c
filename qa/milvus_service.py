"""`QAService` on Milvus: the same reads and document changes, with the index kept in a Milvus server.

The read view is `qa.index.milvus_index.MilvusIndex`; this class only changes how an index is loaded and written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from embeddings import Embedder, encode_documents_cached
from qa.errors import IndexNotFoundError
from qa.index.milvus_index import ANALYZERS, KeywordText, MilvusIndex
from qa.index.milvus_store import MilvusStore
from qa.index.segments import IndexConfig, cut_index_passages, keyword_texts
from qa.index.versions import open_cache
from qa.search.retriever import RetrievalConfig
from qa.service import QAService
from qa.types import Document, Passage

logger = logging.getLogger(__name__)


class MilvusQAService(QAService):
    """`QAService` whose index lives in Milvus. `index_dir` only holds the local embedding cache.

    One writer at a time: new passage rows are numbered from the largest row in Milvus.
    """

    def __init__(self, store: MilvusStore, index_dir: Path, embedder: Embedder,
                 retrieval: RetrievalConfig | None = None, index_config: IndexConfig | None = None,
                 batch_size: int = 32, analyzer: str = "ngram", create_index_dir: bool = True):
        super().__init__(index_dir, embedder, retrieval, index_config, batch_size, create_index_dir=create_index_dir)
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {', '.join(ANALYZERS)}, got {analyzer!r}")
        self.store = store
        self.keyword_text = KeywordText(analyzer, self.index_config.tokenizer)
        if self.index_config.sentence_vectors:
            logger.warning("QA_SENTENCE_VECTORS has no effect on the Milvus backend: it keeps one vector per passage")

    def load(self) -> None:
        if not self.store.exists():
            raise IndexNotFoundError(f"no index in Milvus at {self.store.uri} (collections {self.store.passages_name}, "
                                     f"{self.store.documents_name}); run `qa index` to fill it")
        self._publish(MilvusIndex.read(self.store, self.keyword_text))

    def _write(self, current: MilvusIndex | None, add: list[Document], remove: list[str],
               progress: Callable[[int], None] | None = None) -> MilvusIndex:
        """Delete `remove`, embed and insert `add` (a None `current` starts from empty collections)."""
        if current is None:
            self.store.reset()
            current = MilvusIndex(self.store, {}, {}, self.keyword_text)
        for doc_id in remove:
            self.store.delete_document(doc_id)
        passages, texts = cut_index_passages(add, self.index_config)
        added_passages: dict[int, Passage] = {}
        if passages:
            with open_cache(self.index_dir) as cache:
                vectors = encode_documents_cached(self.embedder, texts, cache, batch_size=self.batch_size,
                                                  progress=progress)
            first = max(self.store.max_row(), max(current.passages, default=-1)) + 1
            rows = list(range(first, first + len(passages)))
            keywords = [self.keyword_text(t) for t in keyword_texts(passages, texts, add, self.index_config)]
            self.store.add([d.to_dict(with_text=True) for d in add], rows, [p.doc_id for p in passages],
                           [p.to_dict() for p in passages], keywords, vectors)
            added_passages = dict(zip(rows, passages))
        return current.changed({d.doc_id: d for d in add}, added_passages, remove)

    def _reusable(self, current: MilvusIndex) -> bool:
        """Collections record no build settings: after changing the model or analyzer, `qa index --rebuild`."""
        return True

    def _rebuild(self, documents: list[Document], progress: Callable[[int], None] | None) -> MilvusIndex:
        return self._write(None, documents, [], progress)

    def _apply(self, current: MilvusIndex, add: list[Document], remove: list[str],
               progress: Callable[[int], None] | None = None) -> MilvusIndex:
        return self._write(current, add, remove, progress)
