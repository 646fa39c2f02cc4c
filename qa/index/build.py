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

import numpy as np

from embeddings import Embedder, EmbeddingCache, VectorIndex, encode_documents_cached
from qa.index.bm25 import BM25Index, BM25Params, BM25Segment
from qa.index.segments import IndexConfig, IndexData, Segment, cut_index_passages, is_title_block
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
    _add_vectors_of(index, 0, texts, embedder, cache, progress, batch_size, embed)
    segments = _build_segments(0, docs, passages, texts, config.tokenizer)
    bm25 = BM25Index([s.bm25 for s in segments], BM25Params(tokenizer_name=config.tokenizer))
    return IndexData(tuple(segments), index, bm25, embedder.name, embedder.dim, config)


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
    new_segments = _build_segments(first_row, docs, passages, texts, data.config.tokenizer)
    index = data.vectors.copy()
    _add_vectors_of(index, first_row, texts, embedder, cache, progress, batch_size, embed)
    bm25 = data.bm25
    for segment in new_segments:
        bm25 = bm25.with_segment(segment.bm25)
    segments, bm25, removed = _merge_small_segments((*data.segments, *new_segments), bm25, data.removed)
    return IndexData(segments, index, bm25, data.model_name, data.dim, data.config, removed)


def _add_vectors_of(index: VectorIndex, first_row: int, texts: list[str], embedder: Embedder,
                    cache: EmbeddingCache | None, progress: Callable[[int], None] | None, batch_size: int,
                    embed: bool) -> None:
    """Give rows first_row.. the vectors of `texts`: encoded (embed) or only those the cache already holds."""
    rows = np.arange(first_row, first_row + len(texts), dtype=np.int64)
    if embed:
        index.add(rows, encode_documents_cached(embedder, texts, cache, batch_size=batch_size, progress=progress))
        return
    cached = cache.get_many(embedder.name, texts) if cache is not None else [None] * len(texts)
    have = [i for i, v in enumerate(cached) if v is not None and v.shape == (embedder.dim,)]
    # A trained index type (IVF, HNSW-SQ8) learns its codes from its first vectors: never from a few of them.
    if have and (len(have) == len(texts) or len(index) or not index.needs_training):
        index.add(rows[have], np.stack([cached[i] for i in have]).astype(np.float32))


def add_vectors(data: IndexData, rows: np.ndarray, vectors: np.ndarray) -> IndexData:
    """A new index with `vectors` for `rows` (rows without one: `IndexData.pending_rows`); `data` stays valid."""
    index = data.vectors.copy()
    index.add(np.asarray(rows, dtype=np.int64), vectors)
    return IndexData(data.segments, index, data.bm25, data.model_name, data.dim, data.config, data.removed)


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
    removed = data.removed | {(owner[i], i) for i in ids}
    return IndexData(data.segments, index, data.bm25.without_rows(rows), data.model_name, data.dim, data.config,
                     removed)


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
