"""The index on disk: documents, passages, vectors and BM25, under one manifest.

Layout of an index folder::

    CURRENT                 name of the live version folder (replaced atomically)
    embeddings.sqlite       embedding cache, shared by all versions (content hash + model -> vector)
    v-<time>-<pid>/         one complete version
        manifest.json       format, model, dim, tokenizer, chunking, counts, file checksums
        documents.jsonl     one document per line (text, metadata, outline)
        passages.jsonl      one passage per line; its line number is its vector/BM25 row
        vectors.faiss/.json dense vectors (embeddings.VectorIndex)
        bm25/               keyword index (qa.bm25.BM25Index)

A new version is written in full beside the live one, then CURRENT is swapped with an atomic rename: a reader never
sees a half-written index, and a crash mid-write leaves the previous version serving.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import Embedder, EmbeddingCache, VectorIndex, encode_documents_cached
from embeddings.errors import IndexMismatchError as VectorIndexMismatch
from qa.bm25 import DEFAULT_TOKENIZER, BM25Index
from qa.chunking import ChunkingConfig, cut_passages
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, QAError
from qa.text import normalize
from qa.types import Document, DocumentMeta, Passage, Section

FORMAT_VERSION = 1
_CURRENT = "CURRENT"
_CACHE_FILE = "embeddings.sqlite"
# What CURRENT may name: a version folder written by `save_index`, nothing with a path separator.
_VERSION_NAME = re.compile(r"v-[0-9A-Za-z_-]{1,120}")

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
    """What an index is built with; recorded in its manifest."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    tokenizer: str = DEFAULT_TOKENIZER
    vector_index: str = "flat"


@dataclass(slots=True)
class IndexData:
    """A loaded (or freshly built) index held in memory. Passage row i is vector id i and BM25 row i."""

    documents: dict[str, Document]
    passages: list[Passage]
    vectors: VectorIndex
    bm25: BM25Index
    model_name: str
    dim: int
    config: IndexConfig
    version: str = ""
    doc_rows: dict[str, list[int]] = field(default_factory=dict)
    header_rows: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.doc_rows = {}
        headers = set()
        for row, passage in enumerate(self.passages):
            self.doc_rows.setdefault(passage.doc_id, []).append(row)
            span = self.documents[passage.doc_id].header_span
            if span is not None and passage.char_start == span[0]:
                headers.add(row)
        self.header_rows = frozenset(headers)

    def index_texts(self) -> list[str]:
        """What BM25 and the embedder saw, row by row."""
        return [passage_index_text(p, self.documents[p.doc_id]) for p in self.passages]


def passage_index_text(passage: Passage, doc: Document | None = None) -> str:
    """The normalized text that BM25 and the embedder see for a passage.

    The title-block passage also carries the metadata read from it, with the words people ask them by
    (`这条新闻是什么时候发布的` finds `信息时间:2020-04-30`), so who/when questions reach it.
    """
    text = normalize(passage.text)
    if doc is None or doc.header_span is None or passage.char_start != doc.header_span[0]:
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
        The index in memory; `save_index` writes it.
    """
    config = config or IndexConfig()
    docs = {d.doc_id: d for d in documents}
    passages = [p for d in docs.values() for p in cut_passages(d, config.chunking)]
    if not passages:
        raise ValueError("the documents yield no passages to index")
    texts = [passage_index_text(p, docs[p.doc_id]) for p in passages]
    vectors = encode_documents_cached(embedder, texts, cache, batch_size=batch_size, progress=progress)
    index = VectorIndex(embedder.dim, index_type=config.vector_index)
    index.add(np.arange(len(passages), dtype=np.int64), vectors)
    bm25 = BM25Index.build(texts, tokenizer_name=config.tokenizer)
    return IndexData(docs, passages, index, bm25, embedder.name, embedder.dim, config)


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
        _write_version(data, tmp)
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
    data.version = version
    _remove_old_versions(index_dir, keep=version)
    return version


def _write_version(data: IndexData, folder: Path) -> None:
    """Every file of one version, each fsynced, then the manifest with their checksums."""
    _write_jsonl(folder / "documents.jsonl", (d.to_dict(with_text=True) for d in data.documents.values()))
    _write_jsonl(folder / "passages.jsonl", (p.to_dict() for p in data.passages))
    data.vectors.save(folder, model_name=data.model_name)
    data.bm25.save(folder / "bm25")
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    # Every data file is checksummed, so a flipped byte anywhere is refused at load instead of scoring `inf`.
    checksums = {p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": data.model_name,
        "dim": data.dim,
        "vector_index": data.config.vector_index,
        "tokenizer": data.config.tokenizer,
        "max_chars": data.config.chunking.max_chars,
        "min_chars": data.config.chunking.min_chars,
        "documents": len(data.documents),
        "passages": len(data.passages),
        "checksums": checksums,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    manifest_path = folder / "manifest.json"
    with manifest_path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2))
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(folder)
    if (folder / "bm25").is_dir():
        _fsync_dir(folder / "bm25")


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


def _document_from_dict(row: dict) -> Document:
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


def load_index(index_dir: Path, model_name: str, dim: int) -> IndexData:
    """Load the live version, checking it was built with this model and that its files are intact.

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
    required = ("model", "dim", "max_chars", "min_chars", "tokenizer", "vector_index", "checksums")
    missing = [key for key in required if key not in manifest]
    if missing or not isinstance(manifest["checksums"], dict):
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
    for name in ("documents.jsonl", "passages.jsonl"):
        if name not in manifest["checksums"]:
            raise IndexCorruptError(f"index manifest in {folder} is corrupted (no checksum for {name}); rebuild "
                                    "with `qa index --rebuild`")
    try:
        documents = [_document_from_dict(json.loads(line))
                     for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines() if line]
        passages = [Passage.from_dict(json.loads(line))
                    for line in (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines() if line]
        vectors = VectorIndex.load(folder, expected_model=model_name, expected_dim=dim)
        bm25 = BM25Index.load(folder / "bm25")
    except VectorIndexMismatch as e:
        raise IndexMismatchError(str(e)) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IndexCorruptError(f"index in {folder} cannot be read ({e}); rebuild with `qa index --rebuild`") from e
    if len(vectors) != len(passages) or len(bm25) != len(passages):
        raise IndexCorruptError(f"index in {folder} is inconsistent: {len(passages)} passages, {len(vectors)} "
                                f"vectors, {len(bm25)} BM25 rows; rebuild with `qa index --rebuild`")
    try:
        config = IndexConfig(ChunkingConfig(manifest["max_chars"], manifest["min_chars"]), manifest["tokenizer"],
                             manifest["vector_index"])
        return IndexData({d.doc_id: d for d in documents}, passages, vectors, bm25, model_name, dim, config,
                         version=folder.name)
    except (ValueError, KeyError, TypeError) as e:
        raise IndexCorruptError(f"index in {folder} cannot be read ({e}); rebuild with `qa index --rebuild`") from e
