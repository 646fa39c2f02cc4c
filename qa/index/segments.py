"""What an index is in memory: immutable segments of passages and BM25 postings, and `IndexData` over them.

Passage row i is vector id i and BM25 row i across all segments. Deleted documents' rows stay in their segment,
dead, until a compaction rewrites it (`qa.index.build`); `qa.index.versions` writes and reads all of this.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import VectorIndex
from embeddings.faiss_index import AUTO_THRESHOLD
from qa.index.bm25 import DEFAULT_TOKENIZER, BM25Index, BM25Segment
from qa.index.sentences import SENTENCE_BITS, group_max, mix, passage_sentences
from qa.index.vocabulary import SegmentVocabulary, Vocabulary, merge_live
from qa.ingest.chunking import ChunkingConfig, cut_passages
from qa.text import normalize
from qa.types import Document, Passage

# Sentences fetched per passage wanted: a passage has ~4 sentences, and a few sentences of one passage often rank
# together near the top.
SENTENCE_FANOUT = 4


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """What an index is built with; recorded in its manifest. A change means a rebuild.

    Attributes:
        vector_index: one of ``embeddings.faiss_index.INDEX_TYPES``; ``auto`` is exact (flat) up to
            ``auto_threshold`` passages, then IVF with 8-bit codes. Sentence vectors use the same type.
        sentence_vectors: also keep one vector per sentence (`qa.index.sentences`); doubles the encoding.
        keyword_titles: BM25 sees each passage with its document's title (`passage_keyword_text`).
    """

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    tokenizer: str = DEFAULT_TOKENIZER
    vector_index: str = "flat"
    auto_threshold: int = AUTO_THRESHOLD
    sentence_vectors: bool = False
    keyword_titles: bool = True

    def new_vector_index(self, dim: int) -> VectorIndex:
        return VectorIndex(dim, index_type=self.vector_index, auto_threshold=self.auto_threshold)


class PassageFile(Sequence[Passage]):
    """The passages of a saved segment, parsed one at a time from its memory-mapped ``passages.jsonl``.

    A large index then costs the OS page cache, not a Python object per passage.
    """

    def __init__(self, path: Path):
        with path.open("rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        # Line starts, found once by scanning for newlines in C; one int64 per passage.
        raw = np.frombuffer(self._map, dtype=np.uint8)
        ends = np.flatnonzero(raw == 0x0A)
        self._starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        self._ends = ends.astype(np.int64)

    def __len__(self) -> int:
        return int(self._ends.size)

    def __getitem__(self, i: int) -> Passage:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        line = self._map[int(self._starts[i]):int(self._ends[i])]
        return Passage.from_dict(json.loads(line))


@dataclass(eq=False)
class Segment:
    """A block of consecutive passage rows written once: their documents, passages and BM25 postings.

    Rows are global (vector id = BM25 row = row here). Saved segments are hard-linked into every later version
    that keeps them, so adding a document writes only the new segment.

    Attributes:
        name: folder name under ``segments/``.
        first_row: global row of the segment's first passage.
        documents: documents whose passages live here, with their global row range and title-block row.
        folder / checksums: where the segment's files already are on disk and their SHA-256 (None: not yet saved).
        vocabulary: the terms learned from the segment's documents (`qa.index.vocabulary`).
    """

    name: str
    first_row: int
    documents: tuple[Document, ...]
    doc_rows: dict[str, tuple[int, int]]
    header_rows: dict[str, int]
    passages: Sequence[Passage]
    bm25: BM25Segment
    folder: Path | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    vocabulary: SegmentVocabulary = field(default_factory=SegmentVocabulary.empty)

    @property
    def end_row(self) -> int:
        return self.first_row + len(self.passages)


class PassageTable(Sequence[Passage]):
    """Passage by global row across segments (deleted rows included: they are never returned by a search)."""

    def __init__(self, segments: Sequence[Segment]):
        self._segments = tuple(segments)
        self._starts = np.array([s.first_row for s in self._segments], dtype=np.int64)
        self._total = self._segments[-1].end_row if self._segments else 0

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, row: int) -> Passage:  # type: ignore[override]
        if not 0 <= row < self._total:
            raise IndexError(f"passage row {row} is out of range [0, {self._total})")
        segment = self._segments[int(np.searchsorted(self._starts, row, side="right")) - 1]
        return segment.passages[row - segment.first_row]

    def __iter__(self) -> Iterator[Passage]:
        for segment in self._segments:
            yield from segment.passages

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


@dataclass(slots=True)
class IndexData:
    """A loaded (or freshly built) index. Passage row i is vector id i and BM25 row i.

    ``removed`` lists (segment name, document id) of documents deleted from saved segments: their rows are dead in
    the BM25 index and absent from the vector index until a compaction rewrites the segments.
    """

    segments: tuple[Segment, ...]
    vectors: VectorIndex
    bm25: BM25Index
    model_name: str
    dim: int
    config: IndexConfig
    removed: frozenset[tuple[str, str]] = frozenset()
    version: str = ""
    # One vector per sentence (ids: `qa.index.sentences`); None for an index saved before sentence vectors.
    sentences: VectorIndex | None = None
    documents: dict[str, Document] = field(init=False)
    passages: PassageTable = field(init=False)
    doc_rows: dict[str, range] = field(init=False)
    header_rows: frozenset[int] = field(init=False)
    # Computed once on first use: the saved manifest, the service's snapshot and progress all ask for it.
    _pending: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _vocabulary: Vocabulary | None = field(default=None, init=False, repr=False, compare=False)
    _sentence_ids: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.documents, self.doc_rows, headers = {}, {}, set()
        for segment in self.segments:
            for doc in segment.documents:
                if (segment.name, doc.doc_id) in self.removed:
                    continue
                self.documents[doc.doc_id] = doc
                self.doc_rows[doc.doc_id] = range(*segment.doc_rows[doc.doc_id])
                if doc.doc_id in segment.header_rows:
                    headers.add(segment.header_rows[doc.doc_id])
        self.header_rows = frozenset(headers)
        self.passages = PassageTable(self.segments)

    @property
    def passage_count(self) -> int:
        """Live passages (deleted documents' rows excluded)."""
        return self.bm25.live_count

    def tune(self, ef_search: int, nprobe: int) -> None:
        """Set the vector indexes' search breadth (HNSW ef_search, IVF nprobe); no rebuild needed."""
        for index in (self.vectors, self.sentences):
            if index is not None:
                index.ef_search = ef_search
                index.nprobe = nprobe

    def _rows_of(self, doc_ids: list[str] | None) -> np.ndarray | None:
        if not doc_ids:
            return None
        return np.fromiter((r for d in doc_ids for r in self.doc_rows[d]), dtype=np.int64)

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """Top `n` rows by BM25 (positive scores only), within `doc_ids` when given.

        Pruned (MaxScore): only what can still enter the top `n` is scored; the same rows and scores as scoring
        every posting.
        """
        return dict(self.bm25.search(query, n, rows=self._rows_of(doc_ids)))

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None,
                     sentence_weight: float = 0.5) -> dict[int, float]:
        """Top `n` rows by cosine to `vector`, within `doc_ids` when given.

        With sentence vectors a row scores `sentence_weight * best sentence + (1 - sentence_weight) * passage
        vector`: the `SENTENCE_FANOUT * n` nearest sentences are grouped by passage (max-sim), then the passage
        vectors of those rows are scored exactly. Without (an old index), by the passage vector alone.
        """
        rows = self._rows_of(doc_ids)
        if self.sentences is None or not len(self.sentences):
            return {int(i): float(s) for i, s in self.vectors.search(vector, n, allowed_ids=rows)[0]}
        allowed = None if doc_ids is None else self._sentences_of_docs(doc_ids)
        hits = self.sentences.search(vector, SENTENCE_FANOUT * n, allowed_ids=allowed)[0]
        best = group_max(hits, lambda sid: sid >> SENTENCE_BITS)
        best = dict(sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:n])
        if sentence_weight >= 1.0 or not best:
            return best
        found = np.fromiter(best, dtype=np.int64, count=len(best))
        passage = dict(self.vectors.search(vector, len(found), allowed_ids=found)[0])
        return mix(best, passage, sentence_weight)

    def sentence_ids_of(self, rows: np.ndarray) -> np.ndarray:
        """The ids of the sentence vectors of `rows` (those that have them)."""
        ids = self._all_sentence_ids()
        return ids[np.isin(ids >> SENTENCE_BITS, np.asarray(rows, dtype=np.int64))]

    def _all_sentence_ids(self) -> np.ndarray:
        if self._sentence_ids is None:
            self._sentence_ids = np.sort(self.sentences.ids()) if self.sentences is not None else np.empty(0, np.int64)
        return self._sentence_ids

    def _sentences_of_docs(self, doc_ids: list[str]) -> np.ndarray:
        """Sentence ids of the documents' row ranges: two binary searches per document (ids sort by row)."""
        ids = self._all_sentence_ids()
        parts = []
        for doc_id in doc_ids:
            rows = self.doc_rows[doc_id]
            lo, hi = np.searchsorted(ids, [rows.start << SENTENCE_BITS, rows.stop << SENTENCE_BITS])
            parts.append(ids[lo:hi])
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def sentence_texts(self, row: int) -> list[str]:
        """What the embedder saw for each sentence of one row."""
        return passage_sentences(self.passages[row], self.index_text(row))

    def pending_rows(self) -> np.ndarray:
        """Live rows without a vector yet (sorted): found by keywords only until `build.add_vectors` gives them one."""
        if self._pending is None:
            live = np.concatenate([np.arange(r.start, r.stop, dtype=np.int64) for r in self.doc_rows.values()]
                                  or [np.empty(0, dtype=np.int64)])
            self._pending = np.setdiff1d(live, self.vectors.ids()) if len(live) else live
        return self._pending

    @property
    def vocabulary(self) -> Vocabulary:
        """The terms learned from the live documents (a deleted document's terms are gone), merged on first use."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(merge_live(
                (s.vocabulary, [i for i, d in enumerate(s.documents) if (s.name, d.doc_id) in self.removed])
                for s in self.segments))
        return self._vocabulary

    def live_rows(self) -> Iterator[int]:
        for rows in self.doc_rows.values():
            yield from rows

    def index_text(self, row: int) -> str:
        """What BM25 and the embedder saw for one row."""
        passage = self.passages[row]
        return passage_index_text(passage, self.documents.get(passage.doc_id))

    def index_texts(self) -> list[str]:
        """What BM25 and the embedder saw, for every live row in row order."""
        return [self.index_text(row) for row in sorted(self.live_rows())]


def is_title_block(passage: Passage, doc: Document | None) -> bool:
    """Whether `passage` is the one that starts at its document's title block (title, speaker, date lines)."""
    return doc is not None and doc.header_span is not None and passage.char_start == doc.header_span[0]


def passage_index_text(passage: Passage, doc: Document | None = None) -> str:
    """The normalized text that BM25 and the embedder see for a passage.

    The title-block passage also carries the metadata read from it, with the words people ask them by
    (`这条新闻是什么时候发布的` finds `信息时间:2020-04-30`), so who/when questions reach it.
    """
    text = normalize(passage.text)
    if not is_title_block(passage, doc):
        return text
    meta = doc.meta
    labels = [f"标题 {doc.title}"]
    if meta.speaker:
        labels.append(f"讲话人 作者 {meta.speaker}")
    if meta.date:
        labels.append(f"日期 时间 发布 {meta.date}")
    if meta.place:
        labels.append(f"地点 {meta.place}")
    return normalize(" ".join([text, *labels]))


def passage_keyword_text(passage: Passage, doc: Document | None, index_text: str) -> str:
    """The text BM25 indexes for a passage: its index text, preceded by its document's title.

    A question names the document it is about (`罗保铭担任什么职务`, `县委扩大会议讲话要求…`) while only the title block
    holds that name: without the title every other passage of the document lacks the question's main words, and
    the title block outranks the passage that answers. (The title block already holds its title.)
    """
    if doc is None or not doc.title or is_title_block(passage, doc):
        return index_text
    return normalize(f"{doc.title} {index_text}")


def keyword_texts(passages: Sequence[Passage], texts: Sequence[str], docs: Sequence[Document],
                  config: IndexConfig) -> list[str]:
    """What BM25 indexes for each passage (`texts` are their index texts)."""
    if not config.keyword_titles:
        return list(texts)
    by_id = {d.doc_id: d for d in docs}
    return [passage_keyword_text(p, by_id.get(p.doc_id), t) for p, t in zip(passages, texts, strict=True)]


def cut_index_passages(docs: Sequence[Document], config: IndexConfig) -> tuple[list[Passage], list[str]]:
    """The passages of `docs` and, row for row, the text BM25 and the embedder see for each."""
    passages = [p for d in docs for p in cut_passages(d, config.chunking)]
    by_id = {d.doc_id: d for d in docs}
    return passages, [passage_index_text(p, by_id[p.doc_id]) for p in passages]
