"""The one way in: files and bytes become `Document`s, dispatched by what the content is.

`load_documents` expands folders and reads every supported file; `document_from_bytes` is the single path for files
on disk and uploads: it sniffs the content (magic numbers, markup), refuses a file whose content is not what its
suffix says, runs the reader of its kind (`plaintext`, `word`, `pdf`, `webpage`) and hands the text to
`qa.ingest.document.document_from_text`.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import IngestError, NoDocumentsError
from qa.ingest.document import document_from_text
from qa.ingest.extracted import Extracted
from qa.ingest.pdf import read_pdf
from qa.ingest.plaintext import TEXT_SUFFIXES, decode_bytes
from qa.ingest.webpage import read_html
from qa.ingest.word import read_docx
from qa.types import Document

# suffix -> reader kind for the formats read by `word`, `pdf` and `webpage` into text in the plain-text conventions.
FORMAT_SUFFIXES = {".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + tuple(FORMAT_SUFFIXES)


_KIND_WORDS = {
    "empty": "an empty file",
    "pdf": "a PDF document",
    "docx": "a Word .docx document",
    "xlsx": "an Excel workbook (.xlsx)",
    "pptx": "a PowerPoint presentation (.pptx)",
    "odf": "an OpenDocument file (.odt/.ods/.odp)",
    "ooxml": "an Office Open XML package that is not a Word document",
    "zip": "a ZIP archive",
    "badzip": "a damaged ZIP archive",
    "ole2": "a legacy Office 97-2003 file (.doc/.xls/.ppt)",
    "rtf": "an RTF document",
    "image": "an image",
    "html": "an HTML page",
    "text": "plain text",
    "binary": "binary data",
}


# What each kind of file would have to be named to be read as what it is.
_RIGHT_SUFFIX = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "text": ".txt"}


# Contents that a text file (.txt/.md) must not have: reading them as text would index garbage.
_NOT_TEXT = {"pdf", "docx", "xlsx", "pptx", "odf", "ooxml", "zip", "badzip", "ole2", "rtf", "image"}


_HTML_MARKERS = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<meta\s|<title>", re.IGNORECASE)


_HTML_TAG = re.compile(r"<(?:p|div|br|span|table|h[1-6]|article|section|a)\b[^>]*>", re.IGNORECASE)


def document_from_bytes(data: bytes, source: str, suffix: str | None = None, title: str | None = None) -> Document:
    """Read a file's bytes into a `Document`, by its suffix (taken from `source` when not given).

    This is the one path for files on disk (`load_document`) and for uploads.

    Raises:
        IngestError: empty file, unsupported suffix, content that is not what the suffix says, damaged, encrypted or
            scanned (no text layer) file.
    """
    suffix = (suffix if suffix is not None else _suffix_of(source)).lower()
    if not data.strip():
        raise IngestError(source, "file is empty")
    kind = sniff(data)
    if suffix in TEXT_SUFFIXES:
        if kind in _NOT_TEXT:
            raise IngestError(source, _mismatch(suffix, kind))
        return document_from_text(decode_bytes(data, source), source, title)
    reader = FORMAT_SUFFIXES.get(suffix)
    if reader is None:
        raise IngestError(source, f"unsupported file type {suffix or '(none)'!r}")
    extracted = extract(data, source, reader, kind)
    return document_from_text(extracted.text, source, title, page_starts=extracted.page_starts,
                              paged=extracted.paged, title_hint=extracted.title, date_hint=extracted.date)


def extract(data: bytes, source: str, reader: str, kind: str | None = None) -> Extracted:
    """Run the `reader` ("docx", "pdf" or "html") on `data` after checking that the content is of that kind."""
    kind = kind or sniff(data)
    if reader == "docx":
        if kind != "docx":
            raise IngestError(source, _mismatch(".docx", kind))
        return read_docx(data, source)
    if reader == "pdf":
        if kind != "pdf":
            raise IngestError(source, _mismatch(".pdf", kind))
        return read_pdf(data, source)
    if reader == "html":
        if kind != "html" and not (kind == "text" and _HTML_TAG.search(_peek_text(data))):
            raise IngestError(source, _mismatch(".html", kind))
        return read_html(data, source)
    raise ValueError(f"unknown reader {reader!r}")


def _suffix_of(source: str) -> str:
    name = source.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def sniff(data: bytes) -> str:
    """What the bytes look like, from magic numbers and markup: a key of `_KIND_WORDS`."""
    if not data.strip():
        return "empty"
    head = data[:4096]
    if data.lstrip(b"\xef\xbb\xbf\x00\t\r\n ").startswith(b"%PDF-") or (b"%PDF-" in data[:1024]
                                                                      and b"%%EOF" in data[-4096:]):
        return "pdf"  # readers accept the header anywhere in the first 1024 bytes
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole2"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")) or (
            head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00"):
        return "image"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text: look at it as text
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    elif b"\x00" in head[:1024]:
        return "binary"
    if _HTML_MARKERS.search(head):
        return "html"
    return "text"


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            if "word/document.xml" in names:
                return "docx"
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "ppt/presentation.xml" in names:
                return "pptx"
            if "mimetype" in names and z.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
                return "odf"
            return "ooxml" if "[Content_Types].xml" in names else "zip"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError):
        return "badzip"


def _peek_text(data: bytes) -> str:
    """The start of the file as text, good enough to look for ASCII markup."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data[:8192].decode("utf-16", errors="ignore")
    return data[:8192].decode("latin-1")


def _mismatch(suffix: str, kind: str) -> str:
    if kind == "empty":
        return "file is empty"
    words = _KIND_WORDS.get(kind, kind)
    if suffix == ".docx" and kind == "badzip":
        return "damaged Word document: the file starts like a .docx (ZIP) package but cannot be opened as one"
    if suffix == ".docx" and kind == "ole2":
        return ("not a .docx: it looks like a legacy Word 97-2003 .doc file (OLE2), which is not supported; "
                "save it as .docx")
    hint = _RIGHT_SUFFIX.get(kind)
    advice = f"; rename it to {hint}" if hint and hint != suffix else ""
    return f"named {suffix} but it looks like {words}, not {_KIND_WORDS[_EXPECTED[suffix]]}{advice}"


_EXPECTED = {".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html",
             **{s: "text" for s in TEXT_SUFFIXES}}




@dataclass(frozen=True, slots=True)
class IngestReport:
    """Documents read, and the files skipped with the reason for each."""

    documents: tuple[Document, ...]
    failures: tuple[IngestError, ...] = field(default=())


def load_document(path: Path) -> Document:
    """Read one file into a `Document`.

    Raises:
        IngestError: missing, unsupported, empty, binary or undecodable file.
    """
    source = str(path)
    if not path.exists():
        raise IngestError(source, "no such file or folder")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise IngestError(source, f"unsupported file type {path.suffix or '(none)'!r}; supported: "
                                  f"{', '.join(SUPPORTED_SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(source, f"cannot read: {e.strerror or e}") from e
    return document_from_bytes(data, source, path.suffix)


def find_files(paths: list[Path]) -> tuple[list[Path], list[IngestError]]:
    """Expand files and folders (recursively) into the supported files under them, sorted, no duplicates."""
    found: dict[Path, None] = {}
    problems: list[IngestError] = []
    for path in paths:
        if path.is_dir():
            # Hidden files and Office lock files (`~$报告.docx`, left beside an open document) are not documents.
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts)
                            and not p.name.startswith("~$"))
            if not inside:
                problems.append(IngestError(str(path), "folder holds no supported files "
                                                       f"({', '.join(SUPPORTED_SUFFIXES)})"))
            found.update(dict.fromkeys(inside))
        elif path.exists():
            found[path] = None
        else:
            problems.append(IngestError(str(path), "no such file or folder"))
    return list(found), problems


def load_documents(paths: list[Path]) -> IngestReport:
    """Read every supported file under `paths`; a bad file is reported and skipped, never fatal to the others.

    Raises:
        NoDocumentsError: nothing at all could be read.
    """
    files, failures = find_files(paths)
    documents: dict[str, Document] = {}
    for path in files:
        try:
            doc = load_document(path)
        except IngestError as e:
            failures.append(e)
            continue
        documents.setdefault(doc.doc_id, doc)  # the same content twice is one document
    if not documents:
        reasons = "; ".join(str(f) for f in failures) or "no input paths"
        raise NoDocumentsError(f"nothing could be ingested: {reasons}")
    return IngestReport(tuple(documents.values()), tuple(failures))
