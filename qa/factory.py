"""Wire a service from settings: the FAISS-backed `QAService` or the Milvus one.

The edges (CLI, web app) call `service_from_settings`; core classes never read settings. It lives apart from both
service modules so that neither imports the other (`MilvusQAService` extends `QAService`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embeddings import Embedder, EmbeddingsError
from qa.config import Settings
from qa.errors import EmbedderError
from qa.index.segments import IndexConfig
from qa.ingest.chunking import ChunkingConfig
from qa.search.retriever import RetrievalConfig
from qa.service import QAService


class RemoteEmbedder:
    """A remote embedder whose failures are `EmbedderError`s (a `QAError`: 503 in the API, one line in the CLI).

    Forwards everything else to the wrapped embedder (`inner`). Only encoding, and learning the dimension, talk to
    the server.
    """

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.name = inner.name

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.inner!r})"

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    @property
    def dim(self) -> int:
        try:
            return self.inner.dim
        except EmbeddingsError as e:
            raise EmbedderError(str(e)) from e

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        try:
            return self.inner.encode_queries(texts)
        except EmbeddingsError as e:
            raise EmbedderError(str(e)) from e

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        try:
            return self.inner.encode_documents(texts)
        except EmbeddingsError as e:
            raise EmbedderError(str(e)) from e


# The settings that make one embedder: services whose settings agree on them can share it (knowledge bases).
EMBEDDER_FIELDS = ("embedder", "model", "embed_url", "embed_model", "embed_query_prefix", "embed_passage_prefix",
                   "embed_input_type", "embed_dim", "embed_batch_size", "embed_timeout_s", "embed_retries",
                   "query_batch_max", "query_batch_wait_ms", "query_cache_size")


def embedder_key(settings: Settings) -> tuple:
    """Equal for settings that would build the same embedder."""
    return tuple(repr(getattr(settings, name)) for name in EMBEDDER_FIELDS)


def service_from_settings(settings: Settings, *, serving: bool = False,
                          embedder: Embedder | None = None, create_index_dir: bool = True) -> QAService:
    """Wire a service from settings: the edges (CLI, web app) call this, core classes never read settings.

    Args:
        settings: the settings.
        serving: for `qa serve`: with QA_EMBED_IN_BACKGROUND, changes are saved before their passages are embedded
            and a background thread embeds them. Otherwise (CLI commands) every change is embedded before it returns.
        embedder: an embedder built from settings with the same `embedder_key` (shared, so that a model is loaded
            once for several knowledge bases); built here when omitted.
        create_index_dir: make the index folder on the first write when missing; false for a knowledge base's
            folder, which its registry makes, so that a write racing its deletion fails instead of making it again.
    """
    embedder = embedder or embedder_from_settings(settings)
    # With a remote embedder, one request per server URL in each encoder call, so that several servers work in
    # parallel.
    batch_size = settings.embed_batch_size * (len(settings.embed_url) if settings.embedder == "openai" else 1)
    return _wire(settings, embedder, batch_size, serving, create_index_dir)


def embedder_from_settings(settings: Settings) -> Embedder:
    """The settings' embedder, wrapped in the question batcher (nothing heavy is loaded until first use)."""
    from embeddings import QueryBatcher, create_embedder

    model: Embedder
    if settings.embedder == "sentence-transformers":
        model = create_embedder("sentence-transformers", model_name_or_path=settings.model)
    elif settings.embedder == "openai":
        from embeddings.openai_embedder import OpenAIEmbedder

        api_key = settings.embed_api_key.get_secret_value() if settings.embed_api_key else None
        remote = OpenAIEmbedder(
            urls=settings.embed_url, model=settings.embed_model, api_key=api_key,
            batch_size=settings.embed_batch_size, timeout_s=settings.embed_timeout_s, retries=settings.embed_retries,
            query_prefix=settings.embed_query_prefix, passage_prefix=settings.embed_passage_prefix,
            send_input_type=settings.embed_input_type, dim=settings.embed_dim)
        model = RemoteEmbedder(remote)
    else:
        model = create_embedder(settings.embedder)
    # Questions of concurrent requests are encoded together on one thread (see embeddings.batching).
    return QueryBatcher(model, max_batch=settings.query_batch_max, max_wait_ms=settings.query_batch_wait_ms,
                        cache_size=settings.query_cache_size)


def _wire(settings: Settings, embedder: Embedder, batch_size: int, serving: bool,
          create_index_dir: bool) -> QAService:
    retrieval = RetrievalConfig(
        fusion=settings.fusion,
        bm25_weight=settings.bm25_weight,
        dense_weight=settings.dense_weight,
        candidates=settings.candidates,
        sentence_weight=settings.sentence_weight,
        rerank_weight=settings.rerank_weight,
        rerank_depth=settings.rerank_depth,
        max_top_k=settings.max_top_k,
        max_query_chars=settings.max_query_chars,
        ef_search=settings.vector_ef_search,
        nprobe=settings.vector_nprobe,
    )
    index_config = IndexConfig(ChunkingConfig(settings.max_chars, settings.min_chars),
                               vector_index=settings.vector_index, auto_threshold=settings.vector_auto_threshold,
                               sentence_vectors=settings.sentence_vectors)
    if settings.backend == "milvus":
        from qa.index.milvus_index import ANALYZERS
        from qa.index.milvus_store import MilvusStore
        from qa.milvus_service import MilvusQAService

        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        store = MilvusStore(settings.milvus_uri, embedder.dim, collection=settings.milvus_collection, token=token,
                            db_name=settings.milvus_db, dense_index=settings.milvus_index,
                            analyzer=ANALYZERS[settings.milvus_analyzer])
        return MilvusQAService(store, settings.index_dir, embedder, retrieval, index_config, batch_size,
                               analyzer=settings.milvus_analyzer, create_index_dir=create_index_dir)
    background = serving and settings.embed_in_background
    return QAService(settings.index_dir, embedder, retrieval, index_config, batch_size,
                     write_lock_timeout_s=settings.write_lock_timeout_s, defer_vectors=background,
                     background_vectors=background, create_index_dir=create_index_dir)
