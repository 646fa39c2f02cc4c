"""Building and changing an index: cut passages, embed them (reusing the cache), build segments.

Adding documents makes one new segment from those documents alone; deleting marks rows dead; more than
`MAX_SEGMENTS` small segments are merged, smallest neighbours first. Every change returns a new `IndexData` and
leaves the old one valid for readers.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from embeddings import Embedder, EmbeddingCache, VectorIndex, encode_documents_cached
from qa.index.bm25 import BM25Index, BM25Params, BM25Segment
from qa.index.segments import (
    IndexConfig,
    IndexData,
    Segment,
    cut_index_passages,
    is_title_block,
    keyword_texts,
)
from qa.index.sentences import rows_of_sentences, sentence_ids, sentences_of
from qa.index.vocabulary import SegmentVocabulary, learn_segment
from qa.types import Document, Passage

# Rows per segment built at once (~600 MB peak to build 32k rows of char 1-3-grams; each query visits every segment).
SEGMENT_ROWS = 32_768


# More small segments than this and the two smallest neighbours are merged.
MAX_SEGMENTS = 8


def _segment_name() -> str:
    return f"s-{time.time_ns()}-{os.getpid()}"


def _keyword_parts(texts: list[str], tokenizer: str, doc_texts: list[str]) -> tuple[BM25Segment, SegmentVocabulary]:
    """A segment's BM25 postings and the vocabulary learned from its documents (run in a worker when there are
    several segments; vectorized learning costs a few percent of tokenizing)."""
    return BM25Index.segment_for(texts, tokenizer), learn_segment(doc_texts, range(len(doc_texts)))


def _new_segment(first_row: int, docs: Sequence[Document], passages: Sequence[Passage], bm25: BM25Segment,
                 vocabulary: SegmentVocabulary) -> Segment:
    doc_rows: dict[str, tuple[int, int]] = {}
    header_rows: dict[str, int] = {}
    for offset, passage in enumerate(passages, start=first_row):
        start, _ = doc_rows.get(passage.doc_id, (offset, offset))
        doc_rows[passage.doc_id] = (start, offset + 1)
    by_id = {d.doc_id: d for d in docs}
    for doc_id, (start, _) in doc_rows.items():
        if is_title_block(passages[start - first_row], by_id[doc_id]):
            header_rows[doc_id] = start
    kept = tuple(d for d in docs if d.doc_id in doc_rows)
    if len(kept) != len(docs):  # the vocabulary numbers the documents given: renumber to the kept ones
        position = {d.doc_id: i for i, d in enumerate(kept)}
        vocabulary = vocabulary.remapped([position.get(d.doc_id, -1) for d in docs])
    return Segment(_segment_name(), first_row, kept, doc_rows, header_rows, list(passages), bm25,
                   vocabulary=vocabulary)


def _build_segments(first_row: int, docs: Sequence[Document], passages: list[Passage], texts: list[str],
                    tokenizer: str) -> list[Segment]:
    """Segments of at most SEGMENT_ROWS rows (a document is never split), their BM25 postings built on all cores.

    Tokenizing is pure Python, so segments are built in worker processes when there are several.
    """
    groups: list[tuple[int, int]] = []  # [start, end) passage positions, cut at document boundaries
    start = 0
    for i in range(1, len(passages) + 1):
        if i == len(passages) or (i - start >= SEGMENT_ROWS and passages[i].doc_id != passages[i - 1].doc_id):
            groups.append((start, i))
            start = i
    chunks = [texts[a:b] for a, b in groups]
    by_id = {d.doc_id: d for d in docs}
    members = [[by_id[d] for d in dict.fromkeys(p.doc_id for p in passages[a:b])] for a, b in groups]
    doc_texts = [[d.text for d in group] for group in members]
    if len(chunks) > 1:
        workers = min(len(chunks), os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_keyword_parts, chunks, [tokenizer] * len(chunks), doc_texts))
    else:
        parts = [_keyword_parts(chunk, tokenizer, group) for chunk, group in zip(chunks, doc_texts, strict=True)]
    return [_new_segment(first_row + a, group, passages[a:b], bm25, vocabulary)
            for (a, b), group, (bm25, vocabulary) in zip(groups, members, parts, strict=True)]


def build_index(
    documents: Iterable[Document],
    embedder: Embedder,
    config: IndexConfig | None = None,
    cache: EmbeddingCache | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
    embed: bool = True,
) -> IndexData:
    """Cut passages, embed them (reusing cached vectors) and build the vector and keyword indexes.

    Args:
        documents: the documents to index (ids must be unique).
        embedder: the dense model.
        config: chunking and index settings.
        cache: embedding cache; unchanged passages cost nothing to re-embed.
        progress: called with the number of passages embedded after each batch.
        batch_size: passages per encoder call.
        embed: False leaves the passages the cache does not hold without a vector (`pending_rows`): the index is
            searchable by keywords at once and `add_vectors` fills them in later.

    Returns:
        The index in memory, one segment; `save_index` writes it.
    """
    config = config or IndexConfig()
    docs = list({d.doc_id: d for d in documents}.values())
    passages, texts = cut_index_passages(docs, config)
    if not passages:
        raise ValueError("the documents yield no passages to index")
    index = config.new_vector_index(embedder.dim)
    sentence_index = config.new_vector_index(embedder.dim) if config.sentence_vectors else None
    _add_vectors_of(index, sentence_index, 0, passages, texts, embedder, cache, progress, batch_size, embed)
    segments = _build_segments(0, docs, passages, keyword_texts(passages, texts, docs, config), config.tokenizer)
    bm25 = BM25Index([s.bm25 for s in segments], BM25Params(tokenizer_name=config.tokenizer))
    return IndexData(tuple(segments), index, bm25, embedder.name, embedder.dim, config, sentences=sentence_index)


def add_documents(
    data: IndexData,
    documents: Sequence[Document],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
    embed: bool = True,
) -> IndexData:
    """A new index holding `data` plus `documents` (ids not yet in `data`), built from their passages alone.

    The existing segments are shared, not copied; the vector index is copied and extended, so `data` stays
    valid for readers. Small segments are merged when there are more than `MAX_SEGMENTS`. With `embed` False,
    new passages the cache does not hold are left without a vector, as in `build_index`.

    Raises:
        ValueError: a document is already indexed, or the documents yield no passages.
    """
    known = [d.doc_id for d in documents if d.doc_id in data.documents]
    if known:
        raise ValueError(f"documents already indexed: {', '.join(known[:5])}")
    docs = list({d.doc_id: d for d in documents}.values())
    passages, texts = cut_index_passages(docs, data.config)
    if not passages:
        raise ValueError("the documents yield no passages to index")
    first_row = len(data.passages)
    new_segments = _build_segments(first_row, docs, passages, keyword_texts(passages, texts, docs, data.config),
                                   data.config.tokenizer)
    index = data.vectors.copy()
    sentence_index = data.sentences.copy() if data.sentences is not None else None
    _add_vectors_of(index, sentence_index, first_row, passages, texts, embedder, cache, progress, batch_size, embed)
    bm25 = data.bm25
    for segment in new_segments:
        bm25 = bm25.with_segment(segment.bm25)
    segments, bm25, removed = _merge_small_segments((*data.segments, *new_segments), bm25, data.removed)
    return IndexData(segments, index, bm25, data.model_name, data.dim, data.config, removed,
                     sentences=sentence_index)


@dataclass(frozen=True, slots=True)
class RowVectors:
    """The vectors of some passage rows, and of their sentences when the index keeps sentence vectors."""

    rows: np.ndarray
    passage_vectors: np.ndarray
    sentence_ids: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> RowVectors:
        """The vectors of `rows` (a sorted subset of this object's sorted rows)."""
        keep = np.searchsorted(self.rows, rows)
        if self.sentence_ids is None or self.sentence_vectors is None:
            return RowVectors(rows, self.passage_vectors[keep])
        chosen = np.isin(rows_of_sentences(self.sentence_ids), rows)
        return RowVectors(rows, self.passage_vectors[keep], self.sentence_ids[chosen], self.sentence_vectors[chosen])

    def add_to(self, passages: VectorIndex, sentences: VectorIndex | None) -> None:
        passages.add(self.rows, self.passage_vectors)
        if sentences is not None and self.sentence_ids is not None and len(self.sentence_ids):
            sentences.add(self.sentence_ids, self.sentence_vectors)


def _scaled_progress(progress: Callable[[int], None] | None, texts: int, passages: int
                     ) -> Callable[[int], None] | None:
    """Report encoded texts (passages and their sentences) as passages, so a progress bar over passages ends at its
    total."""
    if progress is None or not texts or texts == passages:
        return progress
    done = [0, 0]  # texts encoded, passages reported

    def report(n: int) -> None:
        done[0] += n
        now = done[0] * passages // texts
        if now > done[1]:
            progress(now - done[1])
            done[1] = now
    return report


def encode_rows(rows: np.ndarray, sentences: Sequence[Sequence[str]] | None, texts: Sequence[str],
                embedder: Embedder, cache: EmbeddingCache | None, batch_size: int = 32,
                progress: Callable[[int], None] | None = None, cached_only: bool = False) -> RowVectors:
    """Vectors of `rows`: each passage's index text and, when `sentences` is given, each of its sentences.

    One encoding pass over both (cache first; a one-sentence passage's sentence is its text, encoded once).

    Args:
        rows: the rows, sorted.
        sentences: per row, its sentence texts (`passage_sentences`); None: passage vectors only.
        texts: per row, the passage's index text.
        cached_only: encode nothing; keep only the rows whose vectors are all in the cache.
    """
    rows = np.asarray(rows, dtype=np.int64)
    counts = [len(s) for s in sentences] if sentences is not None else [0] * len(rows)
    flat = [*texts, *(t for s in sentences or () for t in s)]
    if cached_only:
        found = _cached(embedder, flat, cache)
        ends = len(rows) + np.cumsum(counts)
        complete = [i for i in range(len(rows))
                    if found[i] is not None and all(v is not None for v in found[ends[i] - counts[i]:ends[i]])]
        keep = complete + [j for i in complete for j in range(ends[i] - counts[i], ends[i])]
        vectors = _stack([found[j] for j in keep], embedder.dim)
        rows, counts = rows[complete], [counts[i] for i in complete]
    else:
        vectors = encode_documents_cached(embedder, flat, cache, batch_size=batch_size,
                                          progress=_scaled_progress(progress, len(flat), len(rows)))
    if sentences is None:
        return RowVectors(rows, vectors)
    return RowVectors(rows, vectors[:len(rows)], sentence_ids(rows, counts), vectors[len(rows):])


def _cached(embedder: Embedder, texts: list[str], cache: EmbeddingCache | None) -> list[np.ndarray | None]:
    found = cache.get_many(embedder.name, texts) if cache is not None else [None] * len(texts)
    return [v if v is not None and v.shape == (embedder.dim,) else None for v in found]


def _stack(vectors: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), dtype=np.float32)


def _add_vectors_of(index: VectorIndex, sentence_index: VectorIndex | None, first_row: int,
                    passages: Sequence[Passage], texts: list[str], embedder: Embedder,
                    cache: EmbeddingCache | None, progress: Callable[[int], None] | None, batch_size: int,
                    embed: bool) -> None:
    """Give rows first_row.. their vectors: encoded (embed) or only those the cache already holds."""
    rows = np.arange(first_row, first_row + len(texts), dtype=np.int64)
    sentences = sentences_of(passages, texts) if sentence_index is not None else None
    vectors = encode_rows(rows, sentences, texts, embedder, cache, batch_size, progress, cached_only=not embed)
    # A trained index type (IVF, HNSW-SQ8) learns its codes from its first vectors: never from a few of them.
    if embed or (len(vectors.rows) and (len(vectors.rows) == len(texts) or len(index) or not index.needs_training)):
        vectors.add_to(index, sentence_index)


def add_vectors(data: IndexData, vectors: RowVectors) -> IndexData:
    """A new index with `vectors` for their rows (rows without one: `IndexData.pending_rows`); `data` stays valid."""
    index = data.vectors.copy()
    sentences = data.sentences.copy() if data.sentences is not None else None
    vectors.add_to(index, sentences)
    return IndexData(data.segments, index, data.bm25, data.model_name, data.dim, data.config, data.removed,
                     sentences=sentences)


def remove_documents(data: IndexData, doc_ids: Iterable[str]) -> IndexData:
    """A new index without `doc_ids`: their rows are marked deleted, the segments are not rewritten.

    Raises:
        DocumentNotFoundError-like KeyError: an id is not indexed.
    """
    ids = list(dict.fromkeys(doc_ids))
    unknown = [i for i in ids if i not in data.documents]
    if unknown:
        raise KeyError(f"documents not in the index: {', '.join(unknown[:5])}")
    rows = np.fromiter((r for i in ids for r in data.doc_rows[i]), dtype=np.int64)
    owner = {doc.doc_id: s.name for s in data.segments for doc in s.documents
             if (s.name, doc.doc_id) not in data.removed}
    index = data.vectors.copy()
    index.remove(rows)
    sentences = None
    if data.sentences is not None:
        sentences = data.sentences.copy()
        sentences.remove(data.sentence_ids_of(rows))
    removed = data.removed | {(owner[i], i) for i in ids}
    return IndexData(data.segments, index, data.bm25.without_rows(rows), data.model_name, data.dim, data.config,
                     removed, sentences=sentences)


def dead_fraction(data: IndexData) -> float:
    """Share of rows that belong to deleted documents (a compaction rebuild pays off past one half)."""
    total = len(data.passages)
    return 1.0 - data.passage_count / total if total else 0.0


def _merge_small_segments(segments: tuple[Segment, ...], bm25: BM25Index, removed: frozenset[tuple[str, str]],
                          ) -> tuple[tuple[Segment, ...], BM25Index, frozenset[tuple[str, str]]]:
    """Merge the adjacent pair with the fewest rows while more than MAX_SEGMENTS segments are small.

    A segment is small below SEGMENT_ROWS rows, and two are merged only if the result stays within it: merging the
    smallest neighbours keeps the cost of a merge proportional to what was recently added, as in Lucene's tiered
    merging. Rows keep their numbers, so the vector index is not touched.
    """
    segments = list(segments)
    while sum(len(s.passages) < SEGMENT_ROWS for s in segments) > MAX_SEGMENTS:
        pairs = [j for j in range(len(segments) - 1)
                 if len(segments[j].passages) + len(segments[j + 1].passages) <= SEGMENT_ROWS]
        if not pairs:
            break
        i = min(pairs, key=lambda j: len(segments[j].passages) + len(segments[j + 1].passages))
        left, right = segments[i], segments[i + 1]
        bm25 = bm25.merged(i, i + 2)
        live_docs = [(s, d) for s in (left, right) for d in s.documents if (s.name, d.doc_id) not in removed]
        # Each side's vocabulary renumbered to the merged segment's documents; deleted documents' entries dropped.
        position = {(s.name, d.doc_id): j for j, (s, d) in enumerate(live_docs)}
        vocabulary = SegmentVocabulary.concat([
            s.vocabulary.remapped([position.get((s.name, d.doc_id), -1) for d in s.documents]) for s in (left, right)])
        merged = Segment(
            _segment_name(), left.first_row, tuple(d for _, d in live_docs),
            {d.doc_id: s.doc_rows[d.doc_id] for s, d in live_docs},
            {d.doc_id: s.header_rows[d.doc_id] for s, d in live_docs if d.doc_id in s.header_rows},
            [*left.passages, *right.passages], bm25.segments[i], vocabulary=vocabulary)
        removed = frozenset(r for r in removed if r[0] not in (left.name, right.name))
        segments[i:i + 2] = [merged]
    return tuple(segments), bm25, removed
