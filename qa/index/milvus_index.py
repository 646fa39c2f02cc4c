"""The read view of an index kept in Milvus: passages, vectors and Milvus's own BM25 live in a Milvus server.

With sentence vectors (`QA_SENTENCE_VECTORS`, fixed when the collections are built) a sentences collection sits
next to the passages one and the dense score of a passage is the FAISS backend's: its best sentence mixed with its
passage vector (`dense_search`).

Milvus scores BM25 over the terms its analyzer gives. Two choices (`QA_MILVUS_ANALYZER`):
- ``ngram`` (default): the text Milvus indexes is our own char 1-3-gram tokens joined by spaces, split by Milvus's
  whitespace tokenizer, so keyword search finds what the FAISS backend's BM25 finds (measured best on the dev set);
- ``chinese``: the raw text, cut by Milvus's jieba-based Chinese analyzer.

`MilvusIndex` is the read view the retriever searches (the same `SearchIndex` interface as the FAISS index, so
fusion, title-block demotion, answers and citations are the same code); `qa.milvus_service.MilvusQAService` is `QAService` with its
writes going to Milvus. Documents and passage metadata are also kept in memory for citations, read from Milvus at
start-up, so every service process pointed at the same collections serves the same index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from qa.index.milvus_store import MilvusStore
from qa.index.segments import is_title_block, passage_index_text
from qa.index.sentences import mix
from qa.index.tokenize import create_tokenizer
from qa.index.versions import document_from_dict
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
    # Whether the index keeps sentence vectors (its sentences collection exists): fixed when it is built.
    sentences: bool = False
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
        return cls(store, documents, passages, keyword_text, store.has_sentences())

    def changed(self, added: Mapping[str, Document], added_passages: Mapping[int, Passage],
                removed: Iterable[str] = ()) -> MilvusIndex:
        """The view after a change already applied to Milvus (no need to read everything back)."""
        gone = set(removed)
        documents = {k: v for k, v in self.documents.items() if k not in gone} | dict(added)
        passages = {r: p for r, p in self.passages.items() if p.doc_id not in gone} | dict(added_passages)
        return MilvusIndex(self.store, documents, passages, self.keyword_text, self.sentences)

    @property
    def passage_count(self) -> int:
        return len(self.passages)

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        text = self.keyword_text(query)
        return self._known(self.store.keyword_search(text, n, doc_ids)) if text.strip() else {}

    def _known(self, found: dict[int, float]) -> dict[int, float]:
        """`found` without rows another process wrote after this view was read: they have no passage here to cite
        (the next request reads the newer view)."""
        return {r: s for r, s in found.items() if r in self.passages}

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None,
                     sentence_weight: float = 0.5) -> dict[int, float]:
        """Top `n` rows by cosine to `vector`, within `doc_ids` when given; the same scores as the FAISS index.

        With sentence vectors a row scores `sentence_weight * best sentence + (1 - sentence_weight) * passage
        vector` (`qa.index.segments.IndexData.dense_search`): Milvus returns the `n` passages with the best
        sentences, grouped by passage, then their passage vectors are scored exactly. Without, by the passage
        vector alone.
        """
        if not self.sentences:
            return self._known(self.store.dense_search(vector, n, doc_ids))
        found = self._known(self.store.sentence_search(vector, n, doc_ids))
        best = dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:n])
        if sentence_weight >= 1.0 or not best:
            return best
        return mix(best, self.store.passage_scores(vector, list(best)), sentence_weight)

    def tune(self, ef_search: int, nprobe: int) -> None:
        """Search breadth is the Milvus index's own setting here."""

    def index_texts(self) -> list[str]:
        return [passage_index_text(p, self.documents.get(p.doc_id)) for _, p in sorted(self.passages.items())]
