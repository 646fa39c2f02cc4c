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
