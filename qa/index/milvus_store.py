"""Milvus backend: passages (text, dense vector, Milvus-side BM25 sparse vector), documents and, optionally, sentences.

``{collection}_passages``: ``row`` (INT64 primary key, assigned by the caller), ``doc_key``, ``doc_id``,
``passage`` (the passage dict as JSON), ``text`` (VARCHAR analysed by Milvus, default analyzer
``{"type": "chinese"}`` = jieba in search mode + a filter that keeps Han/letter/digit tokens), ``sparse``
(filled by a Milvus BM25 function from ``text``; SPARSE_INVERTED_INDEX, metric BM25) and ``dense``
(FLOAT_VECTOR, metric IP).

``{collection}_sentences`` (only for an index with sentence vectors, `qa.index.sentences`): ``sid`` (INT64 primary
key, ``row << 16 | j`` as in the FAISS sentence index), ``row`` (the passage), ``doc_key`` and ``dense``
(FLOAT_VECTOR, metric IP, the passages' index type). A sentence search groups its hits by ``row``
(``group_by_field``), so Milvus returns each passage once, scored by its best sentence (max-sim).

``{collection}_documents``: each document dict as JSON, split into chunks of at most 65535 UTF-8 bytes (the VARCHAR
limit), one row per chunk, reassembled on read. Milvus needs a vector field in every collection, so the rows carry
a constant 2-d ``pad`` vector that is never searched.

Filters never embed a document id: they use ``doc_key`` (SHA-256 hex of the id), so ids may hold any character.
milvus-lite 2.5.1 supports neither template filters (``filter_params``) nor ``\\n``-style escapes in string
literals, so escaping the raw id would not be enough there.

Only this module imports pymilvus (the optional ``milvus`` extra); it is imported when a store is created.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self

import numpy as np

from qa.errors import BackendError
from qa.index.sentences import SENTENCE_BITS

__all__ = ["MilvusStore", "MilvusStoreError"]

_VARCHAR_MAX = 65535  # Milvus's VARCHAR limit, in UTF-8 bytes
_TOPK_MAX = 16384  # Milvus's largest limit for one search
_BATCH_BYTES = 16 << 20  # insert batches stay well under gRPC's 64 MiB message limit
_PAD = [0.0, 0.0]  # the documents collection's unused vector


class _NoMvccWarning(logging.Filter):
    """Drops pymilvus's per-iterator warning that milvus-lite sends no MVCC timestamp (it then uses the client's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("failed to get mvccTs")


class MilvusStoreError(BackendError):
    """A Milvus server could not be reached, or an operation on it failed. The message names the URI."""


def _utf8_chunks(text: str, limit: int = _VARCHAR_MAX) -> list[str]:
    """Splits ``text`` into pieces of at most ``limit`` UTF-8 bytes, never inside a character."""
    chunks, start = [], 0
    while start < len(text):
        piece = text[start : start + limit]
        # A piece of `limit` characters may exceed `limit` bytes: cut the bytes and drop a partial last character.
        piece = piece.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
        chunks.append(piece)
        start += len(piece)
    return chunks or [""]


def _truncate_utf8(text: str, limit: int = _VARCHAR_MAX) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _dumps(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot travel as UTF-8: escape them
        text = json.dumps(data, ensure_ascii=True)
    return text


def _doc_key(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode("utf-8", errors="surrogatepass")).hexdigest()


def _batches(rows: list[dict], size_of: Callable[[dict], int]) -> Iterator[list[dict]]:
    batch, size = [], 0
    for row in rows:
        row_size = size_of(row)
        if batch and size + row_size > _BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


class MilvusStore:
    """Passages (text, dense vector, Milvus-side BM25 sparse vector) and documents in Milvus collections."""

    def __init__(
        self,
        uri: str,
        dim: int,
        collection: str = "zhqa",
        token: str = "",
        db_name: str = "default",
        consistency_level: str = "Strong",
        analyzer: dict | None = None,
        dense_index: str = "AUTOINDEX",
        timeout: float = 30.0,
    ) -> None:
        """Connects to a Milvus server; creates nothing (see ``exists`` and ``reset``).

        Args:
            uri: server address, e.g. ``http://127.0.0.1:19530``.
            dim: size of the dense vectors.
            collection: name prefix of the collections.
            token: ``user:password`` or an API key; empty for none.
            db_name: Milvus database.
            consistency_level: used on collection creation and on every search and query
                (``Strong`` makes a write visible to the next read).
            analyzer: Milvus analyzer params for the BM25 text; default ``{"type": "chinese"}``.
            dense_index: index type of the dense field: ``AUTOINDEX``, ``FLAT`` or ``IVF_FLAT`` on milvus-lite;
                ``HNSW`` etc. on a Milvus server.
            timeout: seconds an RPC may take, retries included.

        Raises:
            ValueError: if ``dim`` < 1.
            MilvusStoreError: if pymilvus is not installed or the server does not answer.
        """
        if dim < 1:
            raise ValueError(f"dim={dim!r}; allowed: dim >= 1")
        self.uri, self.dim, self.consistency_level = uri, dim, consistency_level
        self.analyzer: dict = analyzer if analyzer is not None else {"type": "chinese"}
        self.dense_index, self.timeout = dense_index, timeout
        self.passages_name, self.documents_name = f"{collection}_passages", f"{collection}_documents"
        self.sentences_name = f"{collection}_sentences"
        try:
            import pymilvus
        except ImportError as exc:
            raise MilvusStoreError(f"Milvus at {uri}: pymilvus is not installed (pip install 'zhqa[milvus]')") from exc
        self._pm = pymilvus
        iterator_log = logging.getLogger("pymilvus.orm.iterator")
        if not any(isinstance(f, _NoMvccWarning) for f in iterator_log.filters):
            iterator_log.addFilter(_NoMvccWarning())
        self._client: Any = None
        with self._call("connect"):
            self._client = pymilvus.MilvusClient(uri=uri, token=token, db_name=db_name, timeout=timeout)

    def __repr__(self) -> str:
        return f"MilvusStore(uri={self.uri!r}, dim={self.dim}, collection={self.passages_name[:-9]!r})"

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Turns any client failure into a MilvusStoreError that names the server and the operation."""
        try:
            yield
        except MilvusStoreError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException, grpc errors, and plain ones (IndexError...)
            reason = getattr(exc, "message", "") or str(exc) or type(exc).__name__
            raise MilvusStoreError(f"Milvus at {self.uri}: {what} failed: {reason}") from exc

    @property
    def client(self) -> Any:
        if self._client is None:
            raise MilvusStoreError(f"Milvus at {self.uri}: the store is closed")
        return self._client

    # --- collections -------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the passages and documents collections exist (the sentences one is optional)."""
        with self._call("has_collection"):
            return all(self.client.has_collection(n, timeout=self.timeout)
                       for n in (self.passages_name, self.documents_name))

    def has_sentences(self) -> bool:
        """True when the index keeps sentence vectors (its sentences collection exists)."""
        with self._call("has_collection"):
            return bool(self.client.has_collection(self.sentences_name, timeout=self.timeout))

    def drop(self) -> None:
        """Drops all the index's collections (when they exist): what deleting a knowledge base does on Milvus."""
        with self._call("drop"):
            for name in (self.passages_name, self.documents_name, self.sentences_name):
                if self.client.has_collection(name, timeout=self.timeout):
                    self.client.drop_collection(name, timeout=self.timeout)

    def reset(self, sentences: bool = False) -> None:
        """Drops and recreates the collections, empty, indexed and loaded; with `sentences` the sentences one too."""
        DataType, pm = self._pm.DataType, self._pm
        self.drop()
        with self._call("reset"):

            schema = self.client.create_schema(auto_id=False)
            schema.add_field("row", DataType.INT64, is_primary=True)
            schema.add_field("doc_key", DataType.VARCHAR, max_length=64)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=_VARCHAR_MAX)
            schema.add_field("passage", DataType.VARCHAR, max_length=_VARCHAR_MAX)
            schema.add_field("text", DataType.VARCHAR, max_length=_VARCHAR_MAX,
                             enable_analyzer=True, analyzer_params=self.analyzer)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
            # Milvus computes the BM25 sparse vector itself, on insert (documents) and on search (queries).
            schema.add_function(pm.Function(name="text_bm25", function_type=pm.FunctionType.BM25,
                                            input_field_names=["text"], output_field_names=["sparse"]))
            index = self.client.prepare_index_params()
            index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            index.add_index("dense", index_type=self.dense_index, metric_type="IP")
            index.add_index("doc_key", index_type="INVERTED")
            self.client.create_collection(self.passages_name, schema=schema, index_params=index,
                                          consistency_level=self.consistency_level, timeout=self.timeout)

            schema = self.client.create_schema(auto_id=True)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("doc_key", DataType.VARCHAR, max_length=64)
            schema.add_field("chunk", DataType.INT64)
            schema.add_field("data", DataType.VARCHAR, max_length=_VARCHAR_MAX)
            schema.add_field("pad", DataType.FLOAT_VECTOR, dim=len(_PAD))
            index = self.client.prepare_index_params()
            index.add_index("pad", index_type="FLAT", metric_type="L2")
            self.client.create_collection(self.documents_name, schema=schema, index_params=index,
                                          consistency_level=self.consistency_level, timeout=self.timeout)
            if sentences:
                self._create_sentences()

    def _create_sentences(self) -> None:
        DataType = self._pm.DataType
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("sid", DataType.INT64, is_primary=True)
        schema.add_field("row", DataType.INT64)
        schema.add_field("doc_key", DataType.VARCHAR, max_length=64)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        index = self.client.prepare_index_params()
        index.add_index("dense", index_type=self.dense_index, metric_type="IP")
        index.add_index("doc_key", index_type="INVERTED")
        self.client.create_collection(self.sentences_name, schema=schema, index_params=index,
                                      consistency_level=self.consistency_level, timeout=self.timeout)

    # --- writes ------------------------------------------------------------------------------------------------

    def add(
        self,
        documents: list[dict],
        rows: list[int],
        doc_ids: list[str],
        passages: list[dict],
        texts: list[str],
        vectors: np.ndarray,
        sentence_ids: np.ndarray | None = None,
        sentence_vectors: np.ndarray | None = None,
    ) -> None:
        """Inserts documents, their passages and (for an index with sentence vectors) their sentences.

        Callers delete a document before adding it again.

        Args:
            documents: JSON-able document dicts, each with a ``doc_id`` key; any size (split across rows).
            rows: the passages' int64 primary keys, unique over the store.
            doc_ids: the document id of each passage.
            passages: JSON-able passage dicts; each must serialize to at most 65535 UTF-8 bytes.
            texts: the normalized text Milvus indexes for BM25 (cut at 65535 UTF-8 bytes).
            vectors: float32 array (len(rows), dim), L2-normalized.
            sentence_ids: ids ``row << 16 | j`` (`qa.index.sentences.sentence_ids`) of the passages' sentences;
                None or empty: none (required empty when the store has no sentences collection).
            sentence_vectors: float32 array (len(sentence_ids), dim), L2-normalized.

        Raises:
            ValueError: if the lengths or the vector shape do not match, a passage or document is too large, or
                sentences are given for rows not in `rows`.
            MilvusStoreError: if the insert fails.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(rows) == len(doc_ids) == len(passages) == len(texts) == (vectors.shape[0] if vectors.ndim else -1):
            raise ValueError(f"add() got {len(rows)} rows, {len(doc_ids)} doc_ids, {len(passages)} passages, "
                             f"{len(texts)} texts and vectors of shape {vectors.shape}; all lengths must match")
        if len(rows) and (vectors.ndim != 2 or vectors.shape[1] != self.dim):
            raise ValueError(f"vectors have shape {vectors.shape}; expected (n, {self.dim})")

        sentence_rows = self._sentence_rows(rows, doc_ids, sentence_ids, sentence_vectors)
        passage_rows = []
        for row, doc_id, passage, text, vector in zip(rows, doc_ids, passages, texts, vectors):
            data = _dumps(passage)
            if len(data.encode("utf-8")) > _VARCHAR_MAX:
                raise ValueError(f"passage row {row} serializes to more than {_VARCHAR_MAX} bytes")
            passage_rows.append({"row": int(row), "doc_key": _doc_key(doc_id), "doc_id": _truncate_utf8(doc_id),
                                 "passage": data, "text": _truncate_utf8(text), "dense": vector.tolist()})
        document_rows = []
        for document in documents:
            if "doc_id" not in document:
                raise ValueError(f"document dict has no 'doc_id' key: {sorted(document)[:10]}")
            key = _doc_key(document["doc_id"])
            document_rows += [{"doc_key": key, "chunk": i, "data": piece, "pad": _PAD}
                              for i, piece in enumerate(_utf8_chunks(_dumps(document)))]

        # Documents first: a passage never points at a document that is not stored yet.
        with self._call(f"insert into {self.documents_name}"):
            for batch in _batches(document_rows, lambda r: len(r["data"]) * 3 + 100):
                self.client.insert(self.documents_name, batch, timeout=self.timeout)
        with self._call(f"insert into {self.passages_name}"):
            for batch in _batches(passage_rows, lambda r: (len(r["passage"]) + len(r["text"])) * 3 + 12 * self.dim):
                self.client.insert(self.passages_name, batch, timeout=self.timeout)
        # Sentences last: a sentence hit never names a passage row that is not stored.
        if sentence_rows:
            with self._call(f"insert into {self.sentences_name}"):
                for batch in _batches(sentence_rows, lambda r: 12 * self.dim + 100):
                    self.client.insert(self.sentences_name, batch, timeout=self.timeout)

    def _sentence_rows(self, rows: list[int], doc_ids: list[str], ids: np.ndarray | None,
                       vectors: np.ndarray | None) -> list[dict]:
        """The sentence entities to insert, checked against the passages they belong to."""
        if ids is None or not len(ids):
            return []
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"sentence vectors have shape {vectors.shape}; expected ({len(ids)}, {self.dim})")
        owner = dict(zip((int(r) for r in rows), doc_ids))
        owners = (ids >> SENTENCE_BITS).tolist()
        strays = sorted({r for r in owners if r not in owner})
        if strays:
            raise ValueError(f"sentence vectors for passage rows {strays[:5]} that add() is not inserting")
        if not self.has_sentences():
            raise ValueError(f"{self.sentences_name} does not exist: reset(sentences=True) makes an index with "
                             f"sentence vectors")
        keys = {doc_id: _doc_key(doc_id) for doc_id in set(doc_ids)}
        return [{"sid": int(sid), "row": row, "doc_key": keys[owner[row]], "dense": vector.tolist()}
                for sid, row, vector in zip(ids.tolist(), owners, vectors)]

    def delete_document(self, doc_id: str) -> None:
        """Removes a document's passages, sentences and document rows (no error if there are none)."""
        expr = f'doc_key == "{_doc_key(doc_id)}"'
        sentences = self.has_sentences()
        with self._call(f"delete of document {doc_id!r}"):
            # Sentences first: a sentence hit never names a passage row that is gone.
            if sentences:
                self.client.delete(self.sentences_name, filter=expr, timeout=self.timeout)
            self.client.delete(self.passages_name, filter=expr, timeout=self.timeout)
            self.client.delete(self.documents_name, filter=expr, timeout=self.timeout)

    # --- reads -------------------------------------------------------------------------------------------------

    def _iterate(self, name: str, fields: list[str]) -> Iterator[dict]:
        """Yields every entity of a collection, in batches, so large collections never make one huge reply."""
        iterator = self.client.query_iterator(name, batch_size=1000, output_fields=fields, timeout=self.timeout,
                                              consistency_level=self.consistency_level)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def load_documents(self) -> list[dict]:
        """All document dicts, in insertion order."""
        parts: dict[str, list[tuple[int, int, str]]] = {}
        with self._call(f"read of {self.documents_name}"):
            for entity in self._iterate(self.documents_name, ["id", "doc_key", "chunk", "data"]):
                parts.setdefault(entity["doc_key"], []).append((entity["chunk"], entity["id"], entity["data"]))
        out = []
        # Auto ids grow with insertion time, so the smallest id of a document orders it.
        for chunks in sorted(parts.values(), key=lambda c: min(p[1] for p in c)):
            chunks.sort()
            try:
                out.append(json.loads("".join(p[2] for p in chunks)))
            except json.JSONDecodeError as exc:
                raise MilvusStoreError(f"Milvus at {self.uri}: a document in {self.documents_name} is incomplete "
                                       f"({len(chunks)} chunks do not form valid JSON)") from exc
        return out

    def load_passages(self) -> list[tuple[int, dict]]:
        """(row, passage dict) for every passage, by row."""
        with self._call(f"read of {self.passages_name}"):
            pairs = [(e["row"], json.loads(e["passage"])) for e in self._iterate(self.passages_name, ["row", "passage"])]
        return sorted(pairs, key=lambda p: p[0])

    def max_row(self) -> int:
        """The largest passage row id, -1 when there are no passages."""
        with self._call(f"read of {self.passages_name}"):
            return max((e["row"] for e in self._iterate(self.passages_name, ["row"])), default=-1)

    # --- search ------------------------------------------------------------------------------------------------

    @staticmethod
    def _filter(doc_ids: list[str] | None) -> str:
        return "" if doc_ids is None else f"doc_key in {json.dumps(sorted({_doc_key(d) for d in doc_ids}))}"

    def _dense_data(self, vector: np.ndarray) -> list[list[float]]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValueError(f"query vector has {vector.shape[0]} values; expected {self.dim}")
        return [vector.tolist()]

    def _is_empty(self) -> bool:
        """True when the passages collection holds no row (False when that cannot be told)."""
        try:
            with self._call("count"):
                res = self.client.query(self.passages_name, filter="", output_fields=["count(*)"],
                                        timeout=self.timeout, consistency_level=self.consistency_level)
            return res[0]["count(*)"] == 0
        except (MilvusStoreError, LookupError, TypeError):
            return False

    def _run(self, what: str, sparse: bool, search: Callable[[], list]) -> list:
        """Runs a search; BM25 on a collection never written to fails on milvus-lite (NaN average length)."""
        try:
            with self._call(what):
                return search()
        except MilvusStoreError:
            if sparse and self._is_empty():
                return [[]]
            raise

    def _search(self, what: str, data: list, field: str, params: dict, n: int, doc_ids: list[str] | None
                ) -> dict[int, float]:
        if n <= 0 or doc_ids == []:
            return {}
        hits = self._run(what, field == "sparse", lambda: self.client.search(
            self.passages_name, data=data, anns_field=field, limit=min(n, _TOPK_MAX), filter=self._filter(doc_ids),
            search_params=params, timeout=self.timeout, consistency_level=self.consistency_level))
        return {int(h["id"]): float(h["distance"]) for h in hits[0]}

    def keyword_search(self, query: str, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """Milvus BM25 full-text search over the analysed ``text``: row -> BM25 score, best first.

        An empty query, ``n`` <= 0 or ``doc_ids == []`` gives ``{}``; ``n`` is capped at 16384.
        """
        if not query.strip():
            return {}
        return self._search("keyword search", [_truncate_utf8(query)], "sparse",
                            {"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}}, n, doc_ids)

    def dense_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """Nearest passages by inner product (cosine for normalized vectors): row -> score, best first."""
        return self._search("dense search", self._dense_data(vector), "dense", {"metric_type": "IP"}, n, doc_ids)

    def sentence_search(self, vector: np.ndarray, n: int, doc_ids: list[str] | None = None) -> dict[int, float]:
        """The `n` passages with the nearest sentences, each scored by its best one (max-sim): row -> score.

        Milvus groups the sentence hits by passage row itself (``group_by_field``, one hit per group), so `n`
        passages come back from one search however many of their sentences rank near the top.
        """
        if n <= 0 or doc_ids == []:
            return {}
        hits = self._run("sentence search", False, lambda: self.client.search(
            self.sentences_name, data=self._dense_data(vector), anns_field="dense", limit=min(n, _TOPK_MAX),
            filter=self._filter(doc_ids), group_by_field="row", group_size=1, output_fields=["row"],
            search_params={"metric_type": "IP"}, timeout=self.timeout, consistency_level=self.consistency_level))
        return {int(h["entity"]["row"]): float(h["distance"]) for h in hits[0]}

    def passage_scores(self, vector: np.ndarray, rows: list[int]) -> dict[int, float]:
        """Exact inner products of `vector` with the passage vectors of `rows` (rows not stored are left out).

        A search filtered to `rows` (one round trip returning scores only: ~1 ms where reading 50 vectors took
        ~3 ms); a row that an approximate index (HNSW, IVF) leaves out of it is read by primary key and scored here.
        """
        data = self._dense_data(vector)
        rows = sorted({int(r) for r in rows})
        if not rows:
            return {}
        hits = self._run("passage scores", False, lambda: self.client.search(
            self.passages_name, data=data, anns_field="dense", limit=min(len(rows), _TOPK_MAX),
            filter=f"row in {rows}", search_params={"metric_type": "IP"}, timeout=self.timeout,
            consistency_level=self.consistency_level))
        scores = {int(h["id"]): float(h["distance"]) for h in hits[0]}
        missing = [r for r in rows if r not in scores]
        if missing:
            with self._call(f"read of {self.passages_name}"):
                found = self.client.get(self.passages_name, ids=missing, output_fields=["row", "dense"],
                                        timeout=self.timeout, consistency_level=self.consistency_level)
            query = np.asarray(data[0], dtype=np.float32)
            for entity in found:
                scores[int(entity["row"])] = float(np.asarray(entity["dense"], dtype=np.float32) @ query)
        return scores

    def hybrid_search(
        self,
        query: str,
        vector: np.ndarray,
        n: int,
        doc_ids: list[str] | None = None,
        ranker: str = "rrf",
        weights: tuple[float, float] = (0.7, 0.3),
    ) -> list[tuple[int, float]]:
        """BM25 and dense search, fused.

        ``ranker="rrf"``: Milvus's own ``hybrid_search`` with ``RRFRanker(60)``.
        ``ranker="weighted"``: ``weights[0]`` x BM25 + ``weights[1]`` x dense, each min-max normalized over its
        top ``n`` (the same rule as ``qa.search.fusion.weighted_sum``), fused here from the two Milvus searches:
        milvus-lite 2.5.1's ``WeightedRanker`` normalizes BM25 scores as distances (``1 - 2/pi*atan(s)``), which
        ranks the best keyword match last, and it ignores ``norm_score=False``.

        Returns:
            (row, fused score), best first (ties by row for "weighted"), at most ``n``; for a blank query, the
            dense search's (row, cosine).

        Raises:
            ValueError: for an unknown ranker, a weight outside [0, 1] or a vector of the wrong size.
        """
        if ranker not in ("rrf", "weighted"):
            raise ValueError(f"ranker={ranker!r}; allowed: 'rrf', 'weighted'")
        if len(weights) != 2 or not all(0.0 <= w <= 1.0 for w in weights):
            raise ValueError(f"weights={weights!r}; allowed: two numbers in [0, 1] (BM25, dense)")
        data = self._dense_data(vector)
        if n <= 0 or doc_ids == []:
            return []
        if not query.strip():  # nothing to match by keyword: the dense ranking alone
            return list(self.dense_search(vector, n, doc_ids).items())
        if ranker == "weighted":
            fused: dict[int, float] = {}
            for weight, scores in zip(weights, (self.keyword_search(query, n, doc_ids),
                                                self.dense_search(vector, n, doc_ids))):
                lo, hi = min(scores.values(), default=0.0), max(scores.values(), default=0.0)
                for row, score in scores.items():
                    fused[row] = fused.get(row, 0.0) + weight * ((score - lo) / (hi - lo) if hi > lo else 1.0)
            return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        pm, limit, expr = self._pm, min(n, _TOPK_MAX), self._filter(doc_ids) or None
        requests = [
            pm.AnnSearchRequest(data=[_truncate_utf8(query)], anns_field="sparse", limit=limit, expr=expr,
                                param={"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}}),
            pm.AnnSearchRequest(data=data, anns_field="dense", param={"metric_type": "IP"}, limit=limit, expr=expr),
        ]
        hits = self._run("hybrid search", True, lambda: self.client.hybrid_search(
            self.passages_name, requests, pm.RRFRanker(60), limit=limit, timeout=self.timeout,
            consistency_level=self.consistency_level))
        return [(int(h["id"]), float(h["distance"])) for h in hits[0]]

    def close(self) -> None:
        """Releases the connection; later calls raise MilvusStoreError. Safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            with self._call("close"):
                client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
