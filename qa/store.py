"""The index on disk: documents, passages, vectors and BM25 in immutable segments, under one manifest.

Layout of an index folder::

    CURRENT                 name of the live version folder (replaced atomically)
    embeddings.sqlite       embedding cache, shared by all versions (content hash + model -> vector)
    v-<time>-<pid>/         one complete version
        manifest.json       format, model, dim, tokenizer, chunking, segments, counts, file checksums
        segments/s-<id>/    a block of consecutive rows, written once, hard-linked into later versions
            documents.jsonl     its documents (text, metadata, outline, row range)
            passages.jsonl      one passage per line; line i is row first_row + i
            bm25/*.npy          its BM25 postings (qa.bm25.BM25Segment), memory-mapped when loaded
        deleted.json        rows and documents deleted since their segment was written
        vectors.faiss/.json dense vectors of the live rows (embeddings.VectorIndex)

Adding documents writes one new segment; deleting marks rows dead. A new version is assembled beside the live one
(old segments hard-linked, new files fsynced), then CURRENT is swapped with an atomic rename: a reader never sees a
half-written index, and a crash mid-write leaves the previous version serving.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import json
import logging
import mmap
import multiprocessing
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import Embedder, EmbeddingCache, VectorIndex, encode_documents_cached
from embeddings.errors import IndexMismatchError as VectorIndexMismatch
from embeddings.faiss_index import AUTO_THRESHOLD, INDEX_FILE, MANIFEST_FILE
from qa.bm25 import DEFAULT_TOKENIZER, BM25Index, BM25Params, BM25Segment, top_k
from qa.chunking import ChunkingConfig, cut_passages
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, QAError
from qa.text import normalize
from qa.types import Document, DocumentMeta, Passage, Section

FORMAT_VERSION = 2
_CURRENT = "CURRENT"
_SEGMENTS = "segments"
_DELETED_FILE = "deleted.json"
_SEGMENT_NAME = re.compile(r"s-[0-9]{1,30}-[0-9]{1,10}")
# Rows per segment built at once (~600 MB peak to build 32k rows of char 1-3-grams; each query visits every segment).
SEGMENT_ROWS = 32_768
# More small segments than this and the two smallest neighbours are merged.
MAX_SEGMENTS = 8
_CACHE_FILE = "embeddings.sqlite"
# What CURRENT may name: a version folder written by `save_index`, nothing with a path separator.
_VERSION_NAME = re.compile(r"v-[0-9A-Za-z_-]{1,120}")

VECTOR_FILES = (INDEX_FILE, MANIFEST_FILE)

logger = logging.getLogger(__name__)

# errno values that mean "no room": the disk, the quota or the file size limit is full.
_NO_SPACE = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG})
# How libraries that report write failures as text say it.
_ERRNO_WORDS = ((errno_codes.ENOSPC, ("no space left", "disk is full", "disk full")),
                (errno_codes.EFBIG, ("file too large",)),
                (errno_codes.EDQUOT, ("quota exceeded",)),
                (errno_codes.EROFS, ("read-only file system", "readonly database")))


class IndexWriteError(QAError):
    """A new index version could not be written (disk full, read-only or missing folder, permissions).

    Nothing was published: the previous version stays live on disk and in memory. `errno` is the OS error number
    when there was one; `no_space` tells a full disk (or quota, or file size limit) from other failures.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    @property
    def no_space(self) -> bool:
        return self.errno in _NO_SPACE

    @classmethod
    def from_error(cls, index_dir: Path, error: BaseException) -> IndexWriteError:
        if isinstance(error, IndexWriteError):
            return error
        number = getattr(error, "errno", None)
        if isinstance(error, OSError):
            reason = error.strerror or str(error) or type(error).__name__
        else:
            # sqlite3.Error from the embedding cache ("database or disk is full"), or a RuntimeError from a
            # library that writes its own files (faiss: "write error in …: 99918 != 104448 (File too large)").
            reason = str(error) or type(error).__name__
            for code, words in _ERRNO_WORDS:
                if any(w in reason.lower() for w in words):
                    number = code
                    reason = os.strerror(code)
                    break
        if number in _NO_SPACE:
            reason = f"no space left ({reason})"
        return cls(f"cannot write the index in {index_dir}: {reason}; the live index is unchanged", number)


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """What an index is built with; recorded in its manifest. A change means a rebuild.

    Attributes:
        vector_index: one of ``embeddings.faiss_index.INDEX_TYPES``; ``auto`` is exact (flat) up to
            ``auto_threshold`` passages, then IVF with 8-bit codes.
    """

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    tokenizer: str = DEFAULT_TOKENIZER
    vector_index: str = "flat"
    auto_threshold: int = AUTO_THRESHOLD

    def new_vector_index(self, dim: int) -> VectorIndex:
        return VectorIndex(dim, index_type=self.vector_index, auto_threshold=self.auto_threshold)


class _PassageFile(Sequence[Passage]):
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

    @property
    def end_row(self) -> int:
        return self.first_row + len(self.passages)


def _segment_name() -> str:
    return f"s-{time.time_ns()}-{os.getpid()}"


def _new_segment(first_row: int, docs: Sequence[Document], passages: Sequence[Passage], bm25: BM25Segment) -> Segment:
    doc_rows: dict[str, tuple[int, int]] = {}
    header_rows: dict[str, int] = {}
    for offset, passage in enumerate(passages, start=first_row):
        start, _ = doc_rows.get(passage.doc_id, (offset, offset))
        doc_rows[passage.doc_id] = (start, offset + 1)
    by_id = {d.doc_id: d for d in docs}
    for doc_id, (start, _) in doc_rows.items():
        if is_title_block(passages[start - first_row], by_id[doc_id]):
            header_rows[doc_id] = start
    return Segment(_segment_name(), first_row, tuple(d for d in docs if d.doc_id in doc_rows), doc_rows,
                   header_rows, list(passages), bm25)


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
    if len(chunks) > 1:
        workers = min(len(chunks), os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            postings = list(pool.map(BM25Index.segment_for, chunks, [tokenizer] * len(chunks)))
    else:
        postings = [BM25Index.segment_for(chunk, tokenizer) for chunk in chunks]
    by_id = {d.doc_id: d for d in docs}
    segments = []
    for (a, b), bm25 in zip(groups, postings, strict=True):
        in_group = list(dict.fromkeys(p.doc_id for p in passages[a:b]))
        segments.append(_new_segment(first_row + a, [by_id[d] for d in in_group], passages[a:b], bm25))
    return segments


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
    documents: dict[str, Document] = field(init=False)
    passages: PassageTable = field(init=False)
    doc_rows: dict[str, range] = field(init=False)
    header_rows: frozenset[int] = field(init=False)

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
        """Set the vector index's search breadth (HNSW ef_search, IVF nprobe); no rebuild needed."""
        self.vectors.ef_search = ef_search
        self.vectors.nprobe = nprobe

    def _rows_of(self, doc_ids: list[str] | None) -> np.ndarray | None:
        if not doc_ids:
            return None
        return np.fromiter((r for d in doc_ids for r in self.doc_rows[d]), dtype=np.int64)

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """Top `n` rows by BM25 (positive scores only), within `doc_ids` when given."""
        scores = self.bm25.scores(query)
        rows = self._rows_of(doc_ids)
        if rows is not None:
            masked = np.zeros_like(scores)
            masked[rows] = scores[rows]
            scores = masked
        return dict(top_k(scores, n))

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """Top `n` rows by cosine to `vector`, within `doc_ids` when given."""
        return {int(i): float(s) for i, s in self.vectors.search(vector, n, allowed_ids=self._rows_of(doc_ids))[0]}

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


def cut_index_passages(docs: Sequence[Document], config: IndexConfig) -> tuple[list[Passage], list[str]]:
    """The passages of `docs` and, row for row, the text BM25 and the embedder see for each."""
    passages = [p for d in docs for p in cut_passages(d, config.chunking)]
    by_id = {d.doc_id: d for d in docs}
    return passages, [passage_index_text(p, by_id[p.doc_id]) for p in passages]


def build_index(
    documents: Iterable[Document],
    embedder: Embedder,
    config: IndexConfig | None = None,
    cache: EmbeddingCache | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
) -> IndexData:
    """Cut passages, embed them (reusing cached vectors) and build the vector and keyword indexes.

    Args:
        documents: the documents to index (ids must be unique).
        embedder: the dense model.
        config: chunking and index settings.
        cache: embedding cache; unchanged passages cost nothing to re-embed.
        progress: called with the number of passages embedded after each batch.
        batch_size: passages per encoder call.

    Returns:
        The index in memory, one segment; `save_index` writes it.
    """
    config = config or IndexConfig()
    docs = list({d.doc_id: d for d in documents}.values())
    passages, texts = cut_index_passages(docs, config)
    if not passages:
        raise ValueError("the documents yield no passages to index")
    vectors = encode_documents_cached(embedder, texts, cache, batch_size=batch_size, progress=progress)
    index = config.new_vector_index(embedder.dim)
    index.add(np.arange(len(passages), dtype=np.int64), vectors)
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
) -> IndexData:
    """A new index holding `data` plus `documents` (ids not yet in `data`), built from their passages alone.

    The existing segments are shared, not copied; the vector index is copied and extended, so `data` stays
    valid for readers. Small segments are merged when there are more than `MAX_SEGMENTS`.

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
    vectors = encode_documents_cached(embedder, texts, cache, batch_size=batch_size, progress=progress)
    first_row = len(data.passages)
    new_segments = _build_segments(first_row, docs, passages, texts, data.config.tokenizer)
    index = data.vectors.copy()
    index.add(np.arange(first_row, first_row + len(passages), dtype=np.int64), vectors)
    bm25 = data.bm25
    for segment in new_segments:
        bm25 = bm25.with_segment(segment.bm25)
    segments, bm25, removed = _merge_small_segments((*data.segments, *new_segments), bm25, data.removed)
    return IndexData(segments, index, bm25, data.model_name, data.dim, data.config, removed)


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
        merged = Segment(
            _segment_name(), left.first_row, tuple(d for _, d in live_docs),
            {d.doc_id: s.doc_rows[d.doc_id] for s, d in live_docs},
            {d.doc_id: s.header_rows[d.doc_id] for s, d in live_docs if d.doc_id in s.header_rows},
            [*left.passages, *right.passages], bm25.segments[i])
        removed = frozenset(r for r in removed if r[0] not in (left.name, right.name))
        segments[i:i + 2] = [merged]
    return tuple(segments), bm25, removed


def open_cache(index_dir: Path) -> EmbeddingCache:
    """The embedding cache that lives beside the index versions.

    The cache only saves work: a cache file that SQLite cannot read (truncated, overwritten) is moved aside as
    `embeddings.sqlite.corrupt-<time>` and a new one started, instead of failing every index change.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / _CACHE_FILE
    try:
        cache = EmbeddingCache(path)
        len(cache)  # reads the table, so a damaged file is noticed here and not halfway through a build
        return cache
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and "full" in str(e).lower():
            raise
        aside = path.with_name(f"{_CACHE_FILE}.corrupt-{time.strftime('%Y%m%d%H%M%S')}")
        logger.warning("embedding cache %s cannot be read (%s); moved to %s and starting a new one", path, e,
                       aside.name)
        for suffix in ("", "-wal", "-shm"):
            part = path.with_name(path.name + suffix)
            if part.exists():
                os.replace(part, aside.with_name(aside.name + suffix))
        return EmbeddingCache(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_index(data: IndexData, index_dir: Path) -> str:
    """Write `data` as a new version folder and make it the live one.

    Segments already on disk are hard-linked from the version that holds them, so the cost of a save is the new
    segments, the vector index and the manifest, not the whole corpus.

    Returns:
        The version name.

    Raises:
        IndexWriteError: the version could not be written (disk full, read-only folder…). The partial folder is
            removed and the previous version stays live.
    """
    version = f"v-{time.strftime('%Y%m%d%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}-{os.getpid()}"
    tmp = index_dir / f".tmp-{version}"
    pointer_tmp = index_dir / f".{_CURRENT}.{version}"
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        segment_checksums = _write_version(data, tmp)
        os.replace(tmp, index_dir / version)
        # Swap the pointer atomically: write it beside, fsync, rename over the old one.
        with pointer_tmp.open("w", encoding="utf-8") as f:
            f.write(version)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer_tmp, index_dir / _CURRENT)
    except (OSError, RuntimeError) as e:  # RuntimeError: faiss reports a failed write that way
        for leftover in (tmp, index_dir / version):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            pointer_tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise IndexWriteError.from_error(index_dir, e) from e
    # The new version is live from here on; what follows only makes that durable and tidies up.
    try:
        _fsync_dir(index_dir)
    except OSError as e:  # pragma: no cover - a directory fsync failing after a successful rename is very rare
        logger.warning("could not fsync %s after publishing %s: %s", index_dir, version, e)
    for segment in data.segments:
        segment.folder = index_dir / version / _SEGMENTS / segment.name
        segment.checksums = segment_checksums[segment.name]
    data.version = version
    _remove_old_versions(index_dir, keep=version)
    return version


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _link_segment(segment: Segment, target: Path) -> dict[str, str] | None:
    """Hard-link a saved segment's files into `target`; None when that is not possible (then it is rewritten)."""
    source = segment.folder
    if source is None or not segment.checksums or not all((source / n).is_file() for n in segment.checksums):
        return None
    try:
        for name in segment.checksums:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(source / name, target / name)
    except OSError as e:
        if e.errno in _NO_SPACE:
            raise
        shutil.rmtree(target, ignore_errors=True)  # a file system without hard links: copy by rewriting
        return None
    return dict(segment.checksums)


def _write_segment(segment: Segment, target: Path) -> dict[str, str]:
    """The segment's files under `target` (linked when already saved), each fsynced; returns their checksums."""
    linked = _link_segment(segment, target)
    if linked is not None:
        return linked
    target.mkdir(parents=True, exist_ok=True)
    _write_jsonl(target / "documents.jsonl", (
        {**d.to_dict(with_text=True), "rows": list(segment.doc_rows[d.doc_id]),
         "header_row": segment.header_rows.get(d.doc_id)} for d in segment.documents))
    _write_jsonl(target / "passages.jsonl", (p.to_dict() for p in segment.passages))
    segment.bm25.save(target / "bm25")
    files = sorted(p for p in target.rglob("*") if p.is_file())
    for path in files:
        _fsync_file(path)
    _fsync_dir(target / "bm25")
    _fsync_dir(target)
    return {p.relative_to(target).as_posix(): _sha256(p) for p in files}


def _write_version(data: IndexData, folder: Path) -> dict[str, dict[str, str]]:
    """Every file of one version, then the manifest with their checksums; returns each segment's checksums."""
    segment_checksums = {s.name: _write_segment(s, folder / _SEGMENTS / s.name) for s in data.segments}
    _fsync_dir(folder / _SEGMENTS)
    deleted = {"rows": data.bm25.deleted.tolist(), "documents": sorted(map(list, data.removed))}
    _write_jsonl(folder / _DELETED_FILE, [deleted])
    data.vectors.save(folder, model_name=data.model_name)
    own = [folder / _DELETED_FILE, *(folder / name for name in VECTOR_FILES)]
    for path in own:
        _fsync_file(path)
    # Every data file is checksummed, so a flipped byte anywhere is refused at load instead of scoring `inf`.
    checksums = {p.relative_to(folder).as_posix(): _sha256(p) for p in own}
    for name, sums in segment_checksums.items():
        checksums.update({f"{_SEGMENTS}/{name}/{file}": digest for file, digest in sums.items()})
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": data.model_name,
        "dim": data.dim,
        "vector_index": data.config.vector_index,
        "auto_threshold": data.config.auto_threshold,
        "tokenizer": data.config.tokenizer,
        "max_chars": data.config.chunking.max_chars,
        "min_chars": data.config.chunking.min_chars,
        "documents": len(data.documents),
        "passages": data.passage_count,
        "rows": len(data.passages),
        "segments": [{"name": s.name, "first_row": s.first_row, "rows": len(s.passages)} for s in data.segments],
        "checksums": checksums,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest_path = folder / "manifest.json"
    with manifest_path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2))
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(folder)
    return segment_checksums


def _remove_old_versions(index_dir: Path, keep: str) -> None:
    """Delete superseded versions and leftovers of interrupted writes (best effort: failures only waste space)."""
    try:
        entries = list(index_dir.iterdir())
    except OSError as e:
        logger.warning("could not list %s to remove old index versions: %s", index_dir, e)
        return
    for path in entries:
        try:
            if path.is_dir() and path.name != keep and (path.name.startswith("v-") or path.name.startswith(".tmp-")):
                shutil.rmtree(path, ignore_errors=True)
            elif path.name.startswith(f".{_CURRENT}."):
                path.unlink(missing_ok=True)
        except OSError as e:
            logger.warning("could not remove %s: %s", path, e)


def current_version(index_dir: Path) -> Path:
    """The live version folder.

    Raises:
        IndexNotFoundError: no index has been saved in `index_dir`.
        IndexCorruptError: the CURRENT pointer is unreadable or names no complete version.
    """
    pointer = index_dir / _CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(f"no index in {index_dir} (run `qa index` to build one)")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"index pointer {pointer} cannot be read ({e}); rebuild it with "
                                "`qa index --rebuild`") from e
    if not _VERSION_NAME.fullmatch(name):
        raise IndexCorruptError(f"index pointer {pointer} is corrupted (it names no version folder); rebuild it "
                                "with `qa index --rebuild`")
    folder = index_dir / name
    if not (folder / "manifest.json").is_file():
        raise IndexCorruptError(f"index in {index_dir} points to {folder.name}, which is missing or incomplete; "
                                "rebuild it with `qa index --rebuild`")
    return folder


def _read_manifest_file(folder: Path) -> dict:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"index manifest {path} cannot be read ({e}); rebuild with "
                                "`qa index --rebuild`") from e
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"index manifest {path} is corrupted (not a JSON object); rebuild with "
                                "`qa index --rebuild`")
    return manifest


def read_manifest(index_dir: Path) -> dict:
    """The live version's manifest."""
    return _read_manifest_file(current_version(index_dir))


def document_from_dict(row: dict) -> Document:
    return Document(
        doc_id=row["doc_id"],
        title=row["title"],
        text=row["text"],
        source=row["source"],
        meta=DocumentMeta(**row["meta"]),
        sections=tuple(Section(**{**s, "path": tuple(s["path"])}) for s in row["sections"]),
        boilerplate=tuple(tuple(b) for b in row["boilerplate"]),
        header_span=tuple(row["header_span"]) if row.get("header_span") else None,
        page_starts=tuple(row.get("page_starts") or ()),
        paged=bool(row.get("paged") or row.get("page_starts")),
    )


def _load_segment(folder: Path, entry: dict) -> Segment:
    name, first_row, rows = str(entry["name"]), int(entry["first_row"]), int(entry["rows"])
    if not _SEGMENT_NAME.fullmatch(name):
        raise ValueError(f"bad segment name {name!r}")
    path = folder / _SEGMENTS / name
    documents, doc_rows, header_rows = [], {}, {}
    for line in (path / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        if line:
            row = json.loads(line)
            doc = document_from_dict(row)
            documents.append(doc)
            doc_rows[doc.doc_id] = (int(row["rows"][0]), int(row["rows"][1]))
            if row.get("header_row") is not None:
                header_rows[doc.doc_id] = int(row["header_row"])
    passages = _PassageFile(path / "passages.jsonl")
    bm25 = BM25Segment.load(path / "bm25")
    if len(passages) != rows or len(bm25) != rows:
        raise ValueError(f"segment {name} should hold {rows} rows but has {len(passages)} passages and "
                         f"{len(bm25)} BM25 rows")
    if any(not first_row <= start <= end <= first_row + rows for start, end in doc_rows.values()):
        raise ValueError(f"segment {name} has document rows outside [{first_row}, {first_row + rows})")
    return Segment(name, first_row, tuple(documents), doc_rows, header_rows, passages, bm25, path, {})


def load_index(index_dir: Path, model_name: str, dim: int) -> IndexData:
    """Load the live version, checking it was built with this model and that its files are intact.

    Passages and BM25 postings stay on disk (memory-mapped); documents and the vector index are read in.

    Raises:
        IndexNotFoundError: nothing saved there.
        IndexMismatchError: built with another model, dimension or format version.
        IndexCorruptError: a file is missing or fails its checksum.
    """
    folder = current_version(index_dir)
    manifest = _read_manifest_file(folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(f"index in {index_dir} has format version {manifest.get('format_version')}, "
                                 f"this program reads {FORMAT_VERSION}; rebuild it with `qa index --rebuild`")
    required = ("model", "dim", "max_chars", "min_chars", "tokenizer", "vector_index", "segments", "checksums")
    missing = [key for key in required if key not in manifest]
    if missing or not isinstance(manifest["checksums"], dict) or not isinstance(manifest["segments"], list):
        raise IndexCorruptError(f"index manifest in {folder} is corrupted (missing {', '.join(missing) or 'checksums'}"
                                "); rebuild with `qa index --rebuild`")
    if manifest["model"] != model_name or manifest["dim"] != dim:
        raise IndexMismatchError(
            f"index in {index_dir} was built with model {manifest['model']!r} (dim {manifest['dim']}), but the "
            f"configured model is {model_name!r} (dim {dim}); rebuild it with `qa index --rebuild` or configure "
            "the model it was built with")
    for name, expected in manifest["checksums"].items():
        path = folder / str(name)
        if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
            raise IndexCorruptError(f"index manifest in {folder} is corrupted (file name {name!r}); rebuild with "
                                    "`qa index --rebuild`")
        try:
            intact = path.is_file() and _sha256(path) == expected
        except OSError:
            intact = False
        if not intact:
            raise IndexCorruptError(f"index file {path} is missing or corrupted (checksum mismatch); "
                                    "rebuild with `qa index --rebuild`")
    try:
        segments = []
        for entry in manifest["segments"]:
            segment = _load_segment(folder, entry)
            prefix = f"{_SEGMENTS}/{segment.name}/"
            segment.checksums = {k[len(prefix):]: v for k, v in manifest["checksums"].items() if k.startswith(prefix)}
            if not {"documents.jsonl", "passages.jsonl"} <= set(segment.checksums):
                raise ValueError(f"no checksum for the files of segment {segment.name}")
            segments.append(segment)
        if not segments or [s.first_row for s in segments] != [0, *(s.end_row for s in segments[:-1])]:
            raise ValueError("segments do not cover the rows one after the other")
        deleted = json.loads((folder / _DELETED_FILE).read_text(encoding="utf-8"))
        removed = frozenset((str(seg), str(doc)) for seg, doc in deleted["documents"])
        bm25 = BM25Index([s.bm25 for s in segments], BM25Params(tokenizer_name=manifest["tokenizer"]),
                         np.asarray(deleted["rows"], dtype=np.int64))
        vectors = VectorIndex.load(folder, expected_model=model_name, expected_dim=dim)
        config = IndexConfig(ChunkingConfig(manifest["max_chars"], manifest["min_chars"]), manifest["tokenizer"],
                             manifest["vector_index"], int(manifest.get("auto_threshold", vectors.auto_threshold)))
        data = IndexData(tuple(segments), vectors, bm25, model_name, dim, config, removed, version=folder.name)
    except VectorIndexMismatch as e:
        raise IndexMismatchError(str(e)) from e
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise IndexCorruptError(f"index in {folder} cannot be read ({e}); rebuild with `qa index --rebuild`") from e
    if len(vectors) != data.passage_count or sum(len(r) for r in data.doc_rows.values()) != data.passage_count:
        raise IndexCorruptError(f"index in {folder} is inconsistent: {data.passage_count} live passages, "
                                f"{len(vectors)} vectors; rebuild with `qa index --rebuild`")
    return data
