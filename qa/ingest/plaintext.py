"""Plain text and Markdown: decode UTF-8 (with or without BOM) or GB18030 (GBK, GB2312).
"""

from __future__ import annotations

from qa.errors import IngestError

TEXT_SUFFIXES = (".txt", ".md", ".markdown")


def decode_bytes(data: bytes, source: str) -> str:
    """Decode a text file: UTF-8 (with or without BOM), then GB18030 (a superset of GBK/GB2312).

    Raises:
        IngestError: empty, binary or undecodable content.
    """
    if not data.strip():
        raise IngestError(source, "file is empty")
    if b"\x00" in data[:8192]:
        raise IngestError(source, "binary file (contains NUL bytes), not text")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text
    raise IngestError(source, "cannot decode as UTF-8 or GB18030/GBK text")


def _looks_like_text(text: str) -> bool:
    # Random bytes sometimes decode as GB18030; real text has few control characters.
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return controls <= max(2, len(text) // 200)
