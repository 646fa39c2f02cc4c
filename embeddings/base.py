"""The :class:`Embedder` protocol and small helpers shared by all backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors.

    Queries and documents are encoded by separate methods because many
    retrieval models (e5, bge) embed them with different instructions.

    Attributes:
        name: Model identity; recorded in index manifests and cache keys, so two
            embedders with the same name must produce interchangeable document vectors.
        dim: Vector dimensionality.
    """

    name: str
    dim: int

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes search queries.

        Args:
            texts: Query strings.

        Returns:
            float32 array of shape ``(len(texts), dim)`` with unit-norm rows, so the
            inner product of two rows is their cosine similarity. ``(0, dim)`` for
            an empty list.
        """
        ...

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Encodes passages to be indexed.

        Args:
            texts: Passage strings.

        Returns:
            float32 array of shape ``(len(texts), dim)`` with unit-norm rows;
            ``(0, dim)`` for an empty list.
        """
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validates an encode() argument and returns it as a list.

    Args:
        texts: The texts passed by the caller.

    Returns:
        The texts as a new list.

    Raises:
        TypeError: If ``texts`` is a bare string or contains non-strings.
    """
    # A bare str is iterable, so without this check it would be silently
    # embedded one character at a time.
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a list of str, not a single {type(texts).__name__}: {texts[:40]!r}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}: {t!r:.60}")
    return out


def check_positive(name: str, value: int, maximum: int | None = None) -> int:
    """Validates an integer parameter that must be >= 1 (and optionally <= maximum).

    Args:
        name: Parameter name used in the error message.
        value: The value to check.
        maximum: Optional inclusive upper bound.

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: If the value is not an int.
        ValueError: If the value is outside the allowed range.
    """
    upper = "" if maximum is None else f", {maximum}"
    allowed = f"[1{upper}]" if maximum is not None else ">= 1"
    # bool is an int subclass; True as a batch size is always a bug.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int {allowed}, got {value!r}")
    if value < 1 or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Returns a float32 C-contiguous copy of ``vectors`` with unit-norm rows.

    Args:
        vectors: Array of shape ``(n, dim)``.

    Returns:
        Normalized float32 array of the same shape.

    Raises:
        ValueError: If a row is zero or contains NaN/inf, since it cannot be normalized.
    """
    out = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    if out.size == 0:
        return out
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    # A zero or non-finite norm means the backend produced garbage; dividing
    # would spread NaNs into the index, where they silently break ranking.
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0.0)
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        raise ValueError(f"cannot L2-normalize rows {rows}: norm is zero or not finite")
    out /= norms
    return out


def empty_embeddings(dim: int) -> np.ndarray:
    """Returns the ``(0, dim)`` float32 result for an empty input list."""
    return np.zeros((0, dim), dtype=np.float32)
