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

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import Embedder, EmbeddingCache, VectorIndex, encode_documents_cached
from embeddings.errors import IndexMismatchError as VectorIndexMismatch
from qa.bm25 import DEFAULT_TOKENIZER, BM25Index
from qa.chunking import ChunkingConfig, cut_passages
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.text import normalize
from qa.types import Document, DocumentMeta, Passage, Section

FORMAT_VERSION = 1
_CURRENT = "CURRENT"
_CACHE_FILE = "embeddings.sqlite"


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
    """The embedding cache that lives beside the index versions."""
    index_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddingCache(index_dir / _CACHE_FILE)


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
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    version = f"v-{time.strftime('%Y%m%d%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}-{os.getpid()}"
    tmp = index_dir / f".tmp-{version}"
    tmp.mkdir()
    _write_jsonl(tmp / "documents.jsonl", (d.to_dict(with_text=True) for d in data.documents.values()))
    _write_jsonl(tmp / "passages.jsonl", (p.to_dict() for p in data.passages))
    data.vectors.save(tmp, model_name=data.model_name)
    data.bm25.save(tmp / "bm25")
    # Every data file is checksummed, so a flipped byte anywhere is refused at load instead of scoring `inf`.
    checksums = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
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
    manifest_path = tmp / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    with manifest_path.open("rb") as f:
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    os.replace(tmp, index_dir / version)
    # Swap the pointer atomically: write it beside, fsync, rename over the old one.
    pointer_tmp = index_dir / f".{_CURRENT}.{version}"
    with pointer_tmp.open("w", encoding="utf-8") as f:
        f.write(version)
        f.flush()
        os.fsync(f.fileno())
    os.replace(pointer_tmp, index_dir / _CURRENT)
    _fsync_dir(index_dir)
    data.version = version
    _remove_old_versions(index_dir, keep=version)
    return version


def _remove_old_versions(index_dir: Path, keep: str) -> None:
    for path in index_dir.iterdir():
        if path.is_dir() and path.name != keep and (path.name.startswith("v-") or path.name.startswith(".tmp-")):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{_CURRENT}."):
            path.unlink(missing_ok=True)


def current_version(index_dir: Path) -> Path:
    """The live version folder.

    Raises:
        IndexNotFoundError: no index has been saved in `index_dir`.
    """
    pointer = index_dir / _CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(f"no index in {index_dir} (run `qa index` to build one)")
    folder = index_dir / pointer.read_text(encoding="utf-8").strip()
    if not (folder / "manifest.json").is_file():
        raise IndexCorruptError(f"index in {index_dir} points to {folder.name}, which is missing or incomplete; "
                                "rebuild it with `qa index --rebuild`")
    return folder


def read_manifest(index_dir: Path) -> dict:
    """The live version's manifest."""
    folder = current_version(index_dir)
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


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
    )


def load_index(index_dir: Path, model_name: str, dim: int) -> IndexData:
    """Load the live version, checking it was built with this model and that its files are intact.

    Raises:
        IndexNotFoundError: nothing saved there.
        IndexMismatchError: built with another model, dimension or format version.
        IndexCorruptError: a file is missing or fails its checksum.
    """
    folder = current_version(index_dir)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(f"index in {index_dir} has format version {manifest.get('format_version')}, "
                                 f"this program reads {FORMAT_VERSION}; rebuild it with `qa index --rebuild`")
    if manifest["model"] != model_name or manifest["dim"] != dim:
        raise IndexMismatchError(
            f"index in {index_dir} was built with model {manifest['model']!r} (dim {manifest['dim']}), but the "
            f"configured model is {model_name!r} (dim {dim}); rebuild it with `qa index --rebuild` or configure "
            "the model it was built with")
    for name, expected in manifest.get("checksums", {}).items():
        path = folder / name
        if not path.is_file() or _sha256(path) != expected:
            raise IndexCorruptError(f"index file {path} is missing or corrupted (checksum mismatch); "
                                    "rebuild with `qa index --rebuild`")
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
    config = IndexConfig(ChunkingConfig(manifest["max_chars"], manifest["min_chars"]), manifest["tokenizer"],
                         manifest["vector_index"])
    return IndexData({d.doc_id: d for d in documents}, passages, vectors, bm25, model_name, dim, config,
                     version=folder.name)
