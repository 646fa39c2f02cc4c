"""The index on disk: documents, passages, vectors and BM25 in immutable segments, under one manifest.

Layout of an index folder::

    CURRENT                 name of the live version folder (replaced atomically)
    embeddings.sqlite       embedding cache, shared by all versions (content hash + model -> vector)
    v-<time>-<pid>/         one complete version
        manifest.json       format, model, dim, tokenizer, chunking, segments, counts, file checksums
        segments/s-<id>/    a block of consecutive rows, written once, hard-linked into later versions
            documents.jsonl     its documents (text, metadata, outline, row range)
            passages.jsonl      one passage per line; line i is row first_row + i
            bm25/*.npy          its BM25 postings and per-term bounds (qa.index.postings.BM25Segment), memory-mapped
            vocabulary.json     terms learned from its documents, with the documents holding them (qa.index.vocabulary)
        deleted.json        rows and documents deleted since their segment was written
        vectors.faiss/.json dense vectors of the live rows (embeddings.VectorIndex)
        sentences/          one vector per sentence of the live rows (qa.index.sentences), same files

Adding documents writes one new segment; deleting marks rows dead. A new version is assembled beside the live one
(old segments hard-linked, new files fsynced), then CURRENT is swapped with an atomic rename: a reader never sees a
half-written index, and a crash mid-write leaves the previous version serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from embeddings import EmbeddingCache, VectorIndex
from embeddings.errors import IndexMismatchError as VectorIndexMismatch
from embeddings.faiss_index import INDEX_FILE, MANIFEST_FILE
from qa.errors import (
    NO_SPACE_ERRNOS,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexWriteError,
)
from qa.index.bm25 import BOUND_FILES, BM25Index, BM25Params, BM25Segment
from qa.index.segments import IndexConfig, IndexData, PassageFile, Segment
from qa.index.sentences import SENTENCE_BITS
from qa.index.vocabulary import VOCABULARY_FILE, SegmentVocabulary, learn_segment
from qa.ingest.chunking import ChunkingConfig
from qa.types import Document, DocumentMeta, Section

FORMAT_VERSION = 2


_CURRENT = "CURRENT"


_SEGMENTS = "segments"


_DELETED_FILE = "deleted.json"


_SEGMENT_NAME = re.compile(r"s-[0-9]{1,30}-[0-9]{1,10}")


_CACHE_FILE = "embeddings.sqlite"


# What CURRENT may name: a version folder written by `save_index`, nothing with a path separator.
_VERSION_NAME = re.compile(r"v-[0-9A-Za-z_-]{1,120}")


VECTOR_FILES = (INDEX_FILE, MANIFEST_FILE)


_SENTENCES = "sentences"


logger = logging.getLogger(__name__)


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
        if e.errno in NO_SPACE_ERRNOS:
            raise
        shutil.rmtree(target, ignore_errors=True)  # a file system without hard links: copy by rewriting
        return None
    return dict(segment.checksums)


def _write_segment(segment: Segment, target: Path) -> dict[str, str]:
    """The segment's files under `target` (linked when already saved), each fsynced; returns their checksums."""
    linked = _link_segment(segment, target)
    if linked is not None:
        missing = [f"bm25/{name}" for name in BOUND_FILES if f"bm25/{name}" not in linked]
        if missing:  # saved before segments kept their pruning bounds: add them, so the next load need not
            segment.bm25.save(target / "bm25", only_bounds=True)
            for name in missing:
                _fsync_file(target / name)
                linked[name] = _sha256(target / name)
            _fsync_dir(target / "bm25")
        if VOCABULARY_FILE not in linked:  # saved before segments kept their vocabulary (learned at its load)
            _fsync_file(segment.vocabulary.save(target))
            linked[VOCABULARY_FILE] = _sha256(target / VOCABULARY_FILE)
            _fsync_dir(target)
        return linked
    target.mkdir(parents=True, exist_ok=True)
    _write_jsonl(target / "documents.jsonl", (
        {**d.to_dict(with_text=True), "rows": list(segment.doc_rows[d.doc_id]),
         "header_row": segment.header_rows.get(d.doc_id)} for d in segment.documents))
    _write_jsonl(target / "passages.jsonl", (p.to_dict() for p in segment.passages))
    segment.bm25.save(target / "bm25")
    segment.vocabulary.save(target)
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
    if data.sentences is not None:
        (folder / _SENTENCES).mkdir()
        data.sentences.save(folder / _SENTENCES, model_name=data.model_name)
        own += [folder / _SENTENCES / name for name in VECTOR_FILES]
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
        "passages_without_vectors": len(data.pending_rows()),
        "sentence_vectors": data.sentences is not None,
        "keyword_titles": data.config.keyword_titles,
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


def live_version_name(index_dir: Path) -> str | None:
    """The name CURRENT gives, read without any check (None when there is none): cheap enough for every request."""
    try:
        return (index_dir / _CURRENT).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


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
    passages = PassageFile(path / "passages.jsonl")
    bm25 = BM25Segment.load(path / "bm25")
    if len(passages) != rows or len(bm25) != rows:
        raise ValueError(f"segment {name} should hold {rows} rows but has {len(passages)} passages and "
                         f"{len(bm25)} BM25 rows")
    if any(not first_row <= start <= end <= first_row + rows for start, end in doc_rows.values()):
        raise ValueError(f"segment {name} has document rows outside [{first_row}, {first_row + rows})")
    # A segment saved before vocabularies were kept learns its own now (its next save writes it).
    vocabulary = (SegmentVocabulary.load(path) if (path / VOCABULARY_FILE).is_file()
                  else learn_segment([d.text for d in documents], range(len(documents))))
    return Segment(name, first_row, tuple(documents), doc_rows, header_rows, passages, bm25, path, {}, vocabulary)


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
        sentences = None
        if manifest.get("sentence_vectors"):
            sentences = VectorIndex.load(folder / _SENTENCES, expected_model=model_name, expected_dim=dim)
            if not {f"{_SENTENCES}/{name}" for name in VECTOR_FILES} <= set(manifest["checksums"]):
                raise ValueError("no checksum for the sentence vectors")
        config = IndexConfig(ChunkingConfig(manifest["max_chars"], manifest["min_chars"]), manifest["tokenizer"],
                             manifest["vector_index"], int(manifest.get("auto_threshold", vectors.auto_threshold)),
                             sentence_vectors=sentences is not None,
                             keyword_titles=bool(manifest.get("keyword_titles", False)))
        data = IndexData(tuple(segments), vectors, bm25, model_name, dim, config, removed, version=folder.name,
                         sentences=sentences)
    except VectorIndexMismatch as e:
        raise IndexMismatchError(str(e)) from e
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:  # RuntimeError: faiss
        raise IndexCorruptError(f"index in {folder} cannot be read ({e}); rebuild with `qa index --rebuild`") from e
    # Passages added with their vectors deferred have none yet: the manifest says how many.
    expected_vectors = data.passage_count - int(manifest.get("passages_without_vectors", 0))
    if len(vectors) != expected_vectors or sum(len(r) for r in data.doc_rows.values()) != data.passage_count:
        raise IndexCorruptError(f"index in {folder} is inconsistent: {data.passage_count} live passages, "
                                f"{len(vectors)} vectors; rebuild with `qa index --rebuild`")
    if sentences is not None and np.unique(sentences.ids() >> SENTENCE_BITS).size != len(vectors):
        raise IndexCorruptError(f"index in {folder} is inconsistent: sentence vectors for "
                                f"{np.unique(sentences.ids() >> SENTENCE_BITS).size} passages, {len(vectors)} passage "
                                "vectors; rebuild with `qa index --rebuild`")
    return data
