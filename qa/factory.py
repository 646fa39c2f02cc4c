"""Wire a service from settings: the FAISS-backed `QAService` or the Milvus one.

The edges (CLI, web app) call `service_from_settings`; core classes never read settings. It lives apart from both
service modules so that neither imports the other (`MilvusQAService` extends `QAService`).
"""

from __future__ import annotations

from qa.config import Settings
from qa.index.segments import IndexConfig
from qa.ingest.chunking import ChunkingConfig
from qa.search.retriever import RetrievalConfig
from qa.service import QAService


def service_from_settings(settings: Settings) -> QAService:
    """Wire a service from settings: the edges (CLI, web app) call this, core classes never read settings."""
    from embeddings import QueryBatcher, create_embedder

    if settings.embedder == "sentence-transformers":
        model = create_embedder("sentence-transformers", model_name_or_path=settings.model)
    else:
        model = create_embedder(settings.embedder)
    # Questions of concurrent requests are encoded together on one thread (see embeddings.batching).
    embedder = QueryBatcher(model, max_batch=settings.query_batch_max, max_wait_ms=settings.query_batch_wait_ms,
                            cache_size=settings.query_cache_size)
    retrieval = RetrievalConfig(
        fusion=settings.fusion,
        bm25_weight=settings.bm25_weight,
        dense_weight=settings.dense_weight,
        candidates=settings.candidates,
        max_top_k=settings.max_top_k,
        max_query_chars=settings.max_query_chars,
        ef_search=settings.vector_ef_search,
        nprobe=settings.vector_nprobe,
    )
    index_config = IndexConfig(ChunkingConfig(settings.max_chars, settings.min_chars),
                               vector_index=settings.vector_index, auto_threshold=settings.vector_auto_threshold)
    if settings.backend == "milvus":
        from qa.index.milvus_index import ANALYZERS
        from qa.index.milvus_store import MilvusStore
        from qa.milvus_service import MilvusQAService

        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        store = MilvusStore(settings.milvus_uri, embedder.dim, collection=settings.milvus_collection, token=token,
                            db_name=settings.milvus_db, dense_index=settings.milvus_index,
                            analyzer=ANALYZERS[settings.milvus_analyzer])
        return MilvusQAService(store, settings.index_dir, embedder, retrieval, index_config, settings.embed_batch_size,
                               analyzer=settings.milvus_analyzer)
    return QAService(settings.index_dir, embedder, retrieval, index_config, settings.embed_batch_size,
                     write_lock_timeout_s=settings.write_lock_timeout_s)
