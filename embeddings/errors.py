"""Exceptions raised by the embeddings package.

Every error derives from :class:`EmbeddingsError` so callers can catch the
whole family with a single ``except`` clause.
"""

from __future__ import annotations


class EmbeddingsError(Exception):
    """Base class for all errors raised by the embeddings package."""


class ModelLoadError(EmbeddingsError):
    """An embedding model could not be loaded (missing locally, no network, bad folder)."""


class IndexMismatchError(EmbeddingsError, ValueError):
    """A saved vector index was built with a different model or dimension than expected.

    Subclasses :class:`ValueError` too, because the stored index is a bad value
    for the current configuration rather than a runtime failure.
    """


class RemoteEmbeddingError(EmbeddingsError):
    """A remote embedding server could not be reached or gave an unusable answer.

    Attributes:
        url: The endpoint that failed (never includes credentials).
        problem: What was wrong, e.g. ``"connection refused after 3 attempts"``.
    """

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"embedding server {url}: {problem}")
        self.url = url
        self.problem = problem
