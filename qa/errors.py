"""Domain errors of the QA core. HTTP status codes are chosen in `api/`, never here."""

from __future__ import annotations

import errno as errno_codes
import os
from pathlib import Path


class QAError(Exception):
    """Base class of every error the QA core raises on purpose."""


class IngestError(QAError):
    """A file or text could not be turned into a document. The message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class NoDocumentsError(QAError):
    """Nothing could be ingested from the given paths."""


class InvalidQueryError(QAError, ValueError):
    """A question or a search parameter is out of its allowed range."""


class IndexNotFoundError(QAError):
    """No saved index at the given folder."""


class IndexMismatchError(QAError, ValueError):
    """A saved index was built with another model, dimension or format."""


class IndexCorruptError(QAError):
    """A saved index failed its integrity checks."""


class DocumentNotFoundError(QAError, KeyError):
    """No document with the given id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "document not found"


class ReadOnlyError(QAError):
    """Document changes are switched off by a setting."""


class IndexBusyError(QAError):
    """Another process is changing the index folder (or serves it, for `qa index`); the message says which."""


class IndexGoneError(QAError):
    """The index folder was deleted (its knowledge base deleted) before or while a change waited for it; nothing
    was written."""


class BackendError(QAError):
    """The search backend (a Milvus server) cannot be reached or refused an operation; the message names it."""


class EmbedderError(QAError):
    """The embedding model failed: a remote embedding server is down, timed out or answered something unusable.

    The message names the server's URL and what was wrong. Nothing was written: an index change that needed new
    vectors left the previous version live.
    """


# errno values that mean "no room": the disk, the quota or the file size limit is full.
NO_SPACE_ERRNOS = frozenset({errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG})


# How libraries that report write failures as text say it.
_ERRNO_WORDS = ((errno_codes.ENOSPC, ("no space left", "disk is full", "disk full")),
                (errno_codes.EFBIG, ("file too large",)),
                (errno_codes.EDQUOT, ("quota exceeded",)),
                (errno_codes.EROFS, ("read-only file system", "readonly database")))


class IndexWriteError(QAError):
    """A new index version could not be written (disk full, read-only or missing folder, permissions).

    Nothing was published: the previous version stays live on disk and in memory. `errno` is the OS error number
    when there was one; `no_space` tells a full disk (or quota, or file size limit) from other failures.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    @property
    def no_space(self) -> bool:
        return self.errno in NO_SPACE_ERRNOS

    @classmethod
    def from_error(cls, index_dir: Path, error: BaseException) -> IndexWriteError:
        if isinstance(error, IndexWriteError):
            return error
        number = getattr(error, "errno", None)
        if isinstance(error, OSError):
            reason = error.strerror or str(error) or type(error).__name__
        else:
            # sqlite3.Error from the embedding cache ("database or disk is full"), or a RuntimeError from a
            # library that writes its own files (faiss: "write error in …: 99918 != 104448 (File too large)").
            reason = str(error) or type(error).__name__
            for code, words in _ERRNO_WORDS:
                if any(w in reason.lower() for w in words):
                    number = code
                    reason = os.strerror(code)
                    break
        if number in NO_SPACE_ERRNOS:
            reason = f"no space left ({reason})"
        return cls(f"cannot write the index in {index_dir}: {reason}; the live index is unchanged", number)


class InvalidKnowledgeBaseError(QAError, ValueError):
    """A knowledge base name or setting is not allowed; the message says which rule it breaks."""


class KnowledgeBaseNotFoundError(QAError, KeyError):
    """No knowledge base of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "knowledge base not found"


class KnowledgeBaseExistsError(QAError):
    """A knowledge base of that name exists already (or, for `default`, cannot be created or deleted)."""


class KnowledgeBaseEmptyError(QAError):
    """The knowledge base holds no documents yet: only adding one is possible."""
