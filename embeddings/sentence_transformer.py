"""Any sentence-transformers model (hub name or local folder) as an :class:`Embedder`.

``sentence_transformers`` (and torch) are imported only when a model is first
loaded, so importing this module is cheap and works without the ``st`` extra.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import check_positive, check_texts, empty_embeddings, l2_normalize
from embeddings.errors import EmbeddingsError, ModelLoadError

BGE_ZH_QUERY_PROMPT = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY_PROMPT = "Represent this sentence for searching relevant passages: "
E5_QUERY_PROMPT = "query: "
E5_DOCUMENT_PROMPT = "passage: "

_INSTALL_HINT = 'sentence-transformers is not installed; install the extra with: pip install -e ".[st]"'
# "e5" as a whole dash/underscore-separated token: matches multilingual-e5-small
# and e5-base-v2 but not unrelated names that merely contain the letters.
_E5_RE = re.compile(r"(^|[-_.])e5([-_.]|$)")


@dataclass(frozen=True)
class Prompts:
    """Instruction prefixes prepended to texts before encoding.

    Attributes:
        query: Prefix for queries ("" for none).
        document: Prefix for documents ("" for none).
    """

    query: str = ""
    document: str = ""


def family_prompts(model_name_or_path: str) -> Prompts:
    """Returns the prompts documented for well-known model families, by name.

    Only the last path component is inspected, so a local folder named after the
    model (``/models/bge-small-zh-v1.5``) is recognised too.

    Args:
        model_name_or_path: Hub id or local folder.

    Returns:
        bge ``*-zh*``: the Chinese retrieval instruction for queries only;
        bge ``*-en*``: the English one; e5: ``"query: "`` / ``"passage: "``;
        anything else: no prompts.
    """
    base = Path(model_name_or_path.rstrip("/\\")).name.lower()
    if base.startswith("bge-") and "-zh" in base:
        return Prompts(query=BGE_ZH_QUERY_PROMPT)
    if base.startswith("bge-") and "-en" in base:
        return Prompts(query=BGE_EN_QUERY_PROMPT)
    if _E5_RE.search(base):
        return Prompts(query=E5_QUERY_PROMPT, document=E5_DOCUMENT_PROMPT)
    return Prompts()


def resolve_prompts(
    model_name_or_path: str,
    configured: Mapping[str, str] | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Prompts:
    """Chooses the query and document prompts, field by field.

    Precedence: explicit argument (``""`` explicitly means "no prompt") > a
    non-empty prompt named ``"query"`` / ``"document"`` / ``"passage"`` in the
    model's own config > the family default from :func:`family_prompts`.

    Args:
        model_name_or_path: Hub id or local folder, used for the family default.
        configured: The model's ``prompts`` mapping (``SentenceTransformer.prompts``).
        query_prompt: Explicit query prompt, or ``None`` to auto-select.
        document_prompt: Explicit document prompt, or ``None`` to auto-select.

    Returns:
        The resolved :class:`Prompts`.
    """
    configured = configured or {}
    family = family_prompts(model_name_or_path)
    # sentence-transformers >= 5 fills prompts with {"query": "", "document": ""}
    # for models that define none, so empty entries must not override the family.
    cfg_query = configured.get("query") or None
    cfg_document = configured.get("document") or configured.get("passage") or None
    query = next(p for p in (query_prompt, cfg_query, family.query) if p is not None)
    document = next(p for p in (document_prompt, cfg_document, family.document) if p is not None)
    return Prompts(query=query, document=document)


@dataclass
class _LoadedModel:
    """A loaded SentenceTransformer plus the lock that serializes encode calls."""

    model: Any
    lock: threading.Lock


_MODELS: dict[tuple[str, str], _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", "\\")) or Path(name).expanduser().exists()


def _load_error(name: str, device: str, exc: BaseException) -> ModelLoadError:
    """Builds a ModelLoadError whose message says what to do for this kind of name."""
    path = Path(name).expanduser()
    if path.is_dir():
        hint = (
            "the folder exists but is not a loadable sentence-transformers model "
            "(expected config.json / modules.json and weights inside)"
        )
    elif _looks_like_path(name):
        hint = "no such folder; give the path of a downloaded model folder"
    else:
        hint = (
            "it is not in the local Hugging Face cache and could not be downloaded "
            "(no network, or HF_HUB_OFFLINE=1). Give a local model folder instead, "
            "or enable network access once so it can be cached"
        )
    return ModelLoadError(
        f"could not load sentence-transformers model {name!r} on device {device!r}: {hint}. "
        f"Cause: {type(exc).__name__}: {exc}"
    )


def _load(name: str, device: str) -> _LoadedModel:
    """Returns the process-wide model for (name, device), loading it on first use."""
    key = (name, device)
    loaded = _MODELS.get(key)
    if loaded is not None:
        return loaded
    # Double-checked under a lock: concurrent first requests must not each
    # spend seconds (and hundreds of MB) loading their own copy.
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        try:
            model = SentenceTransformer(
                str(Path(name).expanduser()) if _looks_like_path(name) else name, device=device
            )
        except (OSError, ValueError) as exc:
            # OSError covers "not cached + offline" and missing folders;
            # ValueError covers folders without a recognisable config.
            raise _load_error(name, device, exc) from exc
        loaded = _LoadedModel(model=model, lock=threading.Lock())
        _MODELS[key] = loaded
        return loaded


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model, loaded lazily and cached per (model, device).

    Query/document instructions are picked by :func:`resolve_prompts`.

    Attributes:
        name: Model identity for manifests and caches: ``model_name_or_path``, plus
            a ``+doc_prompt:<hash>`` suffix when an explicit document prompt differs
            from the automatic one (it changes the stored vectors).
        dim: Embedding size; reading it loads the model.
        model_name_or_path: As given.
        device: Torch device string.
        batch_size: Encode batch size.
    """

    def __init__(
        self,
        model_name_or_path: str,
        device: str = "cpu",
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        batch_size: int = 32,
    ) -> None:
        """Creates the embedder without loading the model.

        Args:
            model_name_or_path: Hub id (e.g. ``"BAAI/bge-small-zh-v1.5"``) or local folder.
            device: Torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
            query_prompt: Explicit query prefix; ``None`` selects automatically.
            document_prompt: Explicit document prefix; ``None`` selects automatically.
            batch_size: Texts per forward pass, in [1, 4096].

        Raises:
            ValueError: If an argument is empty or out of range.
        """
        if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
            raise ValueError(f"model_name_or_path must be a non-empty str, got {model_name_or_path!r}")
        if not isinstance(device, str) or not device:
            raise ValueError(f"device must be a non-empty str such as 'cpu' or 'cuda:0', got {device!r}")
        self.model_name_or_path: str = model_name_or_path
        self.device: str = device
        self.batch_size: int = check_positive("batch_size", batch_size, 4096)
        self._query_prompt = query_prompt
        self._document_prompt = document_prompt
        self._prompts: Prompts | None = None
        self.name: str = model_name_or_path.rstrip("/\\") or model_name_or_path
        auto_doc = family_prompts(model_name_or_path).document
        if document_prompt is not None and document_prompt != auto_doc:
            digest = hashlib.sha256(document_prompt.encode("utf-8")).hexdigest()[:8]
            self.name += f"+doc_prompt:{digest}"

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_name_or_path!r}, device={self.device!r})"

    def load(self) -> None:
        """Loads the model now instead of on first use.

        Raises:
            ModelLoadError: If the model is neither a loadable folder nor available
                from the local cache / network.
            ImportError: If sentence-transformers is not installed.
        """
        self._loaded()

    def _loaded(self) -> _LoadedModel:
        return _load(self.model_name_or_path, self.device)

    @property
    def dim(self) -> int:
        """Embedding size (loads the model on first access)."""
        model = self._loaded().model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if not dim:
            raise EmbeddingsError(f"model {self.model_name_or_path!r} does not report an embedding dimension")
        return int(dim)

    @property
    def prompts(self) -> Prompts:
        """The resolved query/document prompts (loads the model to read its config)."""
        if self._prompts is None:
            configured = getattr(self._loaded().model, "prompts", None) or {}
            self._prompts = resolve_prompts(
                self.model_name_or_path, configured, self._query_prompt, self._document_prompt
            )
        return self._prompts

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return empty_embeddings(self.dim)
        loaded = self._loaded()
        # Serialized per model: torch already spreads one call over all cores,
        # and parallel calls on a 2-core box only thrash the caches.
        with loaded.lock:
            vectors = loaded.model.encode(
                texts,
                # "" (not None) so the model's default_prompt_name is never
                # applied on top of the prompt chosen here.
                prompt=prompt,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return l2_normalize(np.asarray(vectors, dtype=np.float32))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes queries with the resolved query prompt.

        Args:
            texts: Query strings.

        Returns:
            float32 ``(len(texts), dim)`` unit-norm rows.
        """
        return self._encode(texts, self.prompts.query)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Encodes documents with the resolved document prompt.

        Args:
            texts: Passage strings.

        Returns:
            float32 ``(len(texts), dim)`` unit-norm rows.
        """
        return self._encode(texts, self.prompts.document)
