"""Reading documents: bytes -> `Document` (text kept exactly, boilerplate spans, metadata, outline) -> passages.

- `reader`: the one entry. `load_documents(paths)` for files and folders, `document_from_bytes` for uploads; sniffs
  the content and dispatches to the reader of its kind.
- `plaintext`, `word`, `pdf`, `webpage`: one reader per format; `extracted` holds what they return and the text
  conventions they share.
- `document`: text -> `Document` (boilerplate, title block, title/speaker/date/place); `sections`: the outline.
- `chunking`: passages cut on paragraph and sentence ends, never across a section, with exact character offsets.
"""
