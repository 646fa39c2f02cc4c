"""The service on Milvus: passages, vectors and Milvus's own BM25 live in a Milvus server.

Milvus scores BM25 over the terms its analyzer gives. Two choices (`QA_MILVUS_ANALYZER`):
- ``ngram`` (default): the text Milvus indexes is our own char 1-3-gram tokens joined by spaces, split by Milvus's
  whitespace tokenizer, so keyword search finds what the FAISS backend's BM25 finds (measured best on the dev set);
- ``chinese``: the raw text, cut by Milvus's jieba-based Chinese analyzer.

`MilvusIndex` is the read view the retriever searches (the same `SearchIndex` interface as the FAISS index, so
fusion, title-block demotion, answers and citations are the same code); `MilvusQAService` is `QAService` with its
writes going to Milvus. Documents and passage metadata are also kept in memory for citations, read from Milvus at
start-up, so every service process pointed at the same collections serves the same index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from embeddings import Embedder, encode_documents_cached
from qa.errors import IndexNotFoundError
from qa.milvus_store import MilvusStore
from qa.retriever import RetrievalConfig
from qa.service import QAService
from qa.store import (
    IndexConfig,
    cut_index_passages,
    document_from_dict,
    is_title_block,
    open_cache,
    passage_index_text,
)
from qa.tokenize import create_tokenizer
from qa.types import Document, Passage

# Milvus analyzer parameters for each `QA_MILVUS_ANALYZER` choice.
ANALYZERS = {"ngram": {"tokenizer": "whitespace"}, "chinese": {"type": "chinese"}}


@dataclass(frozen=True)
class KeywordText:
    """Turns a passage or question into the text Milvus's analyzer receives."""

    analyzer: str = "ngram"
    tokenizer: str = "char123"

    @cached_property
    def _tokenize(self) -> Callable[[str], list[str]]:
        return create_tokenizer(self.tokenizer)

    def __call__(self, text: str) -> str:
        if self.analyzer == "chinese":
            return text
        return " ".join(self._tokenize(text))


@dataclass(frozen=True)
class MilvusIndex:
    """What the service holds of a Milvus index: documents and passages for citations; searches go to Milvus."""

    store: MilvusStore
    documents: Mapping[str, Document]
    passages: Mapping[int, Passage]
    keyword_text: KeywordText = KeywordText()
    doc_rows: Mapping[str, list[int]] = field(init=False)
    header_rows: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        doc_rows: dict[str, list[int]] = {}
        headers = set()
        for row in sorted(self.passages):
            passage = self.passages[row]
            rows = doc_rows.setdefault(passage.doc_id, [])
            if not rows and is_title_block(passage, self.documents.get(passage.doc_id)):
                headers.add(row)
            rows.append(row)
        object.__setattr__(self, "doc_rows", doc_rows)
        object.__setattr__(self, "header_rows", frozenset(headers))

    @classmethod
    def read(cls, store: MilvusStore, keyword_text: KeywordText) -> MilvusIndex:
        documents = {d.doc_id: d for d in map(document_from_dict, store.load_documents())}
        passages = {row: Passage.from_dict(p) for row, p in store.load_passages()}
        return cls(store, documents, passages, keyword_text)

    def changed(self, added: Mapping[str, Document], added_passages: Mapping[int, Passage],
                removed: Iterable[str] = ()) -> MilvusIndex:
        """The view after a change already applied to Milvus (no need to read everything back)."""
        gone = set(removed)
        documents = {k: v for k, v in self.documents.items() if k not in gone} | dict(added)
        passages = {r: p for r, p in self.passages.items() if p.doc_id not in gone} | dict(added_passages)
        return MilvusIndex(self.store, documents, passages, self.keyword_text)

    @property
    def passage_count(self) -> int:
        return len(self.passages)

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        text = self.keyword_text(query)
        return self.store.keyword_search(text, n, doc_ids) if text.strip() else {}

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        return self.store.dense_search(vector, n, doc_ids)

    def tune(self, ef_search: int, nprobe: int) -> None:
        """Search breadth is the Milvus index's own setting here."""

    def index_texts(self) -> list[str]:
        return [passage_index_text(p, self.documents.get(p.doc_id)) for _, p in sorted(self.passages.items())]


class MilvusQAService(QAService):
    """`QAService` whose index lives in Milvus. `index_dir` only holds the local embedding cache.

    One writer at a time: new passage rows are numbered from the largest row in Milvus.
    """

    def __init__(self, store: MilvusStore, index_dir: Path, embedder: Embedder,
                 retrieval: RetrievalConfig | None = None, index_config: IndexConfig | None = None,
                 batch_size: int = 32, analyzer: str = "ngram"):
        super().__init__(index_dir, embedder, retrieval, index_config, batch_size)
        if analyzer not in ANALYZERS:
            raise ValueError(f"analyzer must be one of {', '.join(ANALYZERS)}, got {analyzer!r}")
        self.store = store
        self.keyword_text = KeywordText(analyzer, self.index_config.tokenizer)

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
            self.store.add([d.to_dict(with_text=True) for d in add], rows, [p.doc_id for p in passages],
                           [p.to_dict() for p in passages], [self.keyword_text(t) for t in texts], vectors)
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
