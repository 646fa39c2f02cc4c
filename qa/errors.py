"""Domain errors of the QA core. HTTP status codes are chosen in `api/`, never here."""

from __future__ import annotations


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


class BackendError(QAError):
    """The search backend (a Milvus server) cannot be reached or refused an operation; the message names it."""
