"""The index: `Document`s -> searchable passages, on disk in versions of immutable segments, or in Milvus.

- `tokenize`: character n-gram and jieba tokenizers, query analysis; `bm25`: BM25 postings per segment.
- `segments`: the index in memory (`IndexData`, `Segment`, `IndexConfig`, the text each passage is indexed as).
- `build`: build, add to and delete from an index; `versions`: save and load versions (atomic swap, checksums).
- `milvus_store` and `milvus_index`: the same index kept in a Milvus server, and its read view.
"""
