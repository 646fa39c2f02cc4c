"""The on-disk index: round trip, model checks, integrity checks, versioned folders and the embedding cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embeddings.hashing import HashingEmbedder
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.index import bm25, build
from qa.index.build import MAX_SEGMENTS, add_documents, build_index, remove_documents
from qa.index.segments import IndexConfig, passage_index_text
from qa.index.versions import load_index, open_cache, save_index
from qa.ingest.chunking import ChunkingConfig
from qa.search.retriever import HybridRetriever

QUERIES = ["全区森林防火期从哪天开始", "城关区上半年地区生产总值完成多少", "清河镇乡村振兴推进会"]


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to encode as documents."""

    def __init__(self, inner: HashingEmbedder):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.encoded: list[str] = []

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_queries(texts)


@pytest.fixture
def saved(tmp_path: Path, tiny_docs, embedder):
    """A freshly built tiny index saved under tmp_path/index; returns (index_dir, built data)."""
    data = build_index(tiny_docs, embedder)
    index_dir = tmp_path / "index"
    save_index(data, index_dir)
    return index_dir, data


def live_folder(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()


def segment_file(index_dir: Path, name: str) -> Path:
    """A file of the live version's first segment (``passages.jsonl``, ``bm25/rows.npy``…)."""
    return next(live_folder(index_dir).glob(f"segments/*/{name}"))


def version_folders(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("v-"))


def test_build_index_covers_every_document_and_row(tiny_index, tiny_docs, embedder):
    assert set(tiny_index.documents) == {d.doc_id for d in tiny_docs}
    assert tiny_index.model_name == embedder.name and tiny_index.dim == embedder.dim
    assert len(tiny_index.vectors) == len(tiny_index.passages) == len(tiny_index.bm25)
    rows = sorted(r for rows in tiny_index.doc_rows.values() for r in rows)
    assert rows == list(range(len(tiny_index.passages)))
    for p in tiny_index.passages:  # exact citations survive indexing
        assert tiny_index.documents[p.doc_id].text[p.char_start:p.char_end] == p.text


def test_passage_index_text_adds_metadata_only_to_the_title_block(doc_by_file, tiny_index):
    doc = doc_by_file["a_chengguan_speech.txt"]
    passages = [p for p in tiny_index.passages if p.doc_id == doc.doc_id]
    header = next(p for p in passages if p.char_start == doc.header_span[0])
    body = next(p for p in passages if "56.7亿元" in p.text)
    header_text = passage_index_text(header, doc)
    assert doc.meta.speaker in header_text and doc.meta.date in header_text
    assert "讲话人" in header_text and "日期" in header_text
    assert "讲话人" not in passage_index_text(body, doc)
    assert passage_index_text(header) == passage_index_text(header, None)  # no document: plain text


def test_round_trip_gives_identical_passages_documents_and_search_results(saved, embedder):
    index_dir, data = saved
    loaded = load_index(index_dir, embedder.name, embedder.dim)
    assert loaded.passages == data.passages
    assert loaded.documents == data.documents
    assert loaded.config == data.config == IndexConfig()
    assert loaded.version == data.version == live_folder(index_dir).name
    before, after = HybridRetriever(data, embedder), HybridRetriever(loaded, embedder)
    for query in QUERIES:
        for mode in ("hybrid", "dense", "bm25"):
            a = before.search(query, top_k=10, mode=mode)
            b = after.search(query, top_k=10, mode=mode)
            assert [h.passage.passage_id for h in a] == [h.passage.passage_id for h in b], (query, mode)
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)


def test_round_trip_keeps_a_non_default_config(tmp_path: Path, tiny_docs, embedder, doc_by_file):
    config = IndexConfig(ChunkingConfig(max_chars=120, min_chars=40), vector_index="hnsw")
    data = build_index(tiny_docs, embedder, config)
    save_index(data, tmp_path / "index")
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert loaded.config == config
    assert loaded.passages == data.passages
    assert max(len(p.text) for p in loaded.passages) <= 120
    speech = doc_by_file["a_chengguan_speech.txt"].doc_id
    hits = HybridRetriever(loaded, embedder).search("森林防火期", top_k=5, mode="dense", doc_ids=[speech])
    assert hits and {h.passage.doc_id for h in hits} == {speech}


def test_manifest_records_model_dim_counts_and_checksums(saved, embedder):
    index_dir, data = saved
    manifest = json.loads((live_folder(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == embedder.name and manifest["dim"] == embedder.dim
    assert manifest["documents"] == len(data.documents) and manifest["passages"] == len(data.passages)
    files = {name.rsplit("/", 1)[-1] for name in manifest["checksums"]}
    assert {"documents.jsonl", "passages.jsonl", "vectors.faiss", "rows.npy", "deleted.json"} <= files


def test_loading_with_another_model_name_names_both_models(saved, embedder):
    index_dir, _ = saved
    with pytest.raises(IndexMismatchError) as info:
        load_index(index_dir, "other-model-xyz", embedder.dim)
    message = str(info.value)
    assert embedder.name in message and "other-model-xyz" in message
    assert "rebuild" in message


def test_loading_with_another_dim_names_both_dims(saved, embedder):
    index_dir, _ = saved
    other = HashingEmbedder(dim=64)
    with pytest.raises(IndexMismatchError) as info:
        load_index(index_dir, other.name, other.dim)
    message = str(info.value)
    assert embedder.name in message and other.name in message
    assert str(embedder.dim) in message and "64" in message


def test_same_name_but_other_dim_is_a_mismatch(saved, embedder):
    index_dir, _ = saved
    with pytest.raises(IndexMismatchError) as info:
        load_index(index_dir, embedder.name, 128)
    assert "256" in str(info.value) and "128" in str(info.value)


def test_missing_index_raises_index_not_found(tmp_path: Path, embedder):
    with pytest.raises(IndexNotFoundError):
        load_index(tmp_path / "does-not-exist", embedder.name, embedder.dim)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IndexNotFoundError):
        load_index(empty, embedder.name, embedder.dim)


def test_corrupted_passages_file_raises_index_corrupt_error_mentioning_rebuild(saved, embedder):
    index_dir, _ = saved
    path = segment_file(index_dir, "passages.jsonl")
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 4] = bytes(b ^ 0xFF for b in raw[middle:middle + 4])
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError) as info:
        load_index(index_dir, embedder.name, embedder.dim)
    assert "rebuild" in str(info.value)


def flip_tail(path: Path, start: int = 200) -> None:
    """XOR every byte after `start` (past any file header) so the content is garbage of the same size."""
    raw = bytearray(path.read_bytes())
    assert len(raw) > start + 16
    raw[start:] = bytes(b ^ 0x40 for b in raw[start:])
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", ["documents.jsonl", "vectors.faiss", "deleted.json"])
def test_other_corrupted_checked_files_raise_index_corrupt_error(saved, embedder, name):
    index_dir, _ = saved
    path = live_folder(index_dir) / name
    if name == "deleted.json":
        path.write_text('{"rows": [0], "documents": []}\n', encoding="utf-8")
    else:
        flip_tail(path if path.exists() else segment_file(index_dir, name))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_dir, embedder.name, embedder.dim)


def test_corrupted_bm25_file_raises_index_corrupt_error(saved, embedder):
    index_dir, _ = saved
    flip_tail(segment_file(index_dir, "bm25/rows.npy"), start=140)
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_dir, embedder.name, embedder.dim)


def test_a_valid_looking_edit_of_passages_is_still_caught(saved, embedder):
    """Changing a passage's text to other valid JSON must fail the checksum, not serve wrong citations."""
    index_dir, _ = saved
    path = segment_file(index_dir, "passages.jsonl")
    text = path.read_text(encoding="utf-8")
    assert "56.7亿元" in text
    path.write_text(text.replace("56.7亿元", "99.9亿元"), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_dir, embedder.name, embedder.dim)


def test_missing_live_version_folder_is_corrupt(saved, embedder):
    index_dir, _ = saved
    shutil.rmtree(live_folder(index_dir))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_dir, embedder.name, embedder.dim)


def test_second_save_switches_current_and_removes_the_old_version(saved, tiny_docs, embedder):
    index_dir, first = saved
    first_version = first.version
    assert version_folders(index_dir) == [first_version]

    fewer_docs = [d for d in tiny_docs if not d.source.endswith("c_qinghe_news.txt")]
    second = build_index(fewer_docs, embedder)
    second_version = save_index(second, index_dir)

    assert second_version != first_version
    assert (index_dir / "CURRENT").read_text(encoding="utf-8").strip() == second_version
    assert version_folders(index_dir) == [second_version]
    assert not (index_dir / first_version).exists()
    assert not [p for p in index_dir.iterdir() if p.name.startswith((".tmp-", ".CURRENT."))]
    loaded = load_index(index_dir, embedder.name, embedder.dim)
    assert loaded.version == second_version
    assert set(loaded.documents) == {d.doc_id for d in fewer_docs}


def test_leftover_tmp_folder_from_a_crash_does_not_affect_loading(saved, embedder):
    index_dir, data = saved
    # What a crash between writing files and the rename leaves behind: a half-written version and a pointer temp.
    crashed = index_dir / ".tmp-v-20000101000000-000000001-1"
    crashed.mkdir()
    (crashed / "passages.jsonl").write_text('{"broken": ', encoding="utf-8")
    (crashed / "manifest.json").write_text("{}", encoding="utf-8")
    (index_dir / f".CURRENT.{crashed.name[5:]}").write_text(crashed.name[5:], encoding="utf-8")

    loaded = load_index(index_dir, embedder.name, embedder.dim)
    assert loaded.version == data.version
    assert loaded.passages == data.passages

    # The next successful save clears the debris.
    save_index(build_index(list(data.documents.values()), embedder), index_dir)
    assert not crashed.exists()
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".CURRENT.")]


def test_second_build_with_the_cache_encodes_nothing(tmp_path: Path, tiny_docs, embedder):
    index_dir = tmp_path / "index"
    counting = CountingEmbedder(embedder)

    cache = open_cache(index_dir)
    try:
        first = build_index(tiny_docs, counting, cache=cache)
    finally:
        cache.close()
    expected_texts = first.index_texts()
    assert sorted(counting.encoded) == sorted(set(expected_texts))  # each distinct text encoded once

    counting.encoded.clear()
    cache = open_cache(index_dir)  # reopened, as a second `qa index` run would
    try:
        second = build_index(tiny_docs, counting, cache=cache)
    finally:
        cache.close()
    assert counting.encoded == []
    assert second.passages == first.passages
    rows = np.arange(len(first.passages), dtype=np.int64)
    np.testing.assert_allclose(second.vectors.reconstruct(rows), first.vectors.reconstruct(rows), atol=1e-6)


def test_cache_only_encodes_new_passages(tmp_path: Path, tiny_docs, doc_by_file, embedder):
    index_dir = tmp_path / "index"
    counting = CountingEmbedder(embedder)
    kept = [d for d in tiny_docs if not d.source.endswith("c_qinghe_news.txt")]
    with open_cache(index_dir) as cache:
        build_index(kept, counting, cache=cache)
    counting.encoded.clear()
    with open_cache(index_dir) as cache:
        full = build_index(tiny_docs, counting, cache=cache)
    news = doc_by_file["c_qinghe_news.txt"]
    news_texts = {t for t, p in zip(full.index_texts(), full.passages) if p.doc_id == news.doc_id}
    assert set(counting.encoded) == news_texts


def test_cache_is_per_model(tmp_path: Path, tiny_docs):
    """Vectors cached for one model are never served to another."""
    index_dir = tmp_path / "index"
    with open_cache(index_dir) as cache:
        build_index(tiny_docs, CountingEmbedder(HashingEmbedder(dim=256)), cache=cache)
    other = CountingEmbedder(HashingEmbedder(dim=128))
    with open_cache(index_dir) as cache:
        data = build_index(tiny_docs, other, cache=cache)
    assert len(other.encoded) == len(set(data.index_texts()))


# --- incremental changes: segments, deletions, merges -------------------------------------------------------------


def _ranked_ids(data, query: str, mode: str) -> list[tuple[str, float]]:
    hits = HybridRetriever(data, HashingEmbedder()).search(query, top_k=10, mode=mode)
    return [(h.passage.passage_id, round(h.score, 5)) for h in hits]


def test_adding_a_document_gives_the_same_results_as_a_full_build(tiny_docs, embedder):
    *first, last = tiny_docs
    grown = add_documents(build_index(first, embedder), [last], embedder)
    whole = build_index(tiny_docs, embedder)
    assert len(grown.segments) == 2 and list(grown.passages) == list(whole.passages)
    assert grown.doc_rows == whole.doc_rows and grown.header_rows == whole.header_rows
    for query in QUERIES:
        for mode in ("hybrid", "bm25", "dense"):
            assert _ranked_ids(grown, query, mode) == _ranked_ids(whole, query, mode)


def test_removing_a_document_gives_the_same_results_as_building_without_it(tiny_docs, doc_by_file, embedder):
    news = doc_by_file["c_qinghe_news.txt"]
    shrunk = remove_documents(build_index(tiny_docs, embedder), [news.doc_id])
    without = build_index([d for d in tiny_docs if d.doc_id != news.doc_id], embedder)
    assert news.doc_id not in shrunk.documents and shrunk.passage_count == without.passage_count
    assert len(shrunk.vectors) == shrunk.passage_count
    for query in QUERIES:
        for mode in ("hybrid", "bm25", "dense"):
            assert _ranked_ids(shrunk, query, mode) == _ranked_ids(without, query, mode)
    with pytest.raises(KeyError, match="not in the index"):
        remove_documents(shrunk, [news.doc_id])


def test_saving_an_addition_links_the_old_segment_and_encodes_only_the_new_passages(tmp_path, tiny_docs, embedder):
    index_dir = tmp_path / "index"
    *first, last = tiny_docs
    counting = CountingEmbedder(embedder)
    with open_cache(index_dir) as cache:
        base = build_index(first, counting, cache=cache)
    save_index(base, index_dir)
    old_file = segment_file(index_dir, "passages.jsonl")
    old_inode = old_file.stat().st_ino

    counting.encoded.clear()
    with open_cache(index_dir) as cache:
        grown = add_documents(base, [last], counting, cache=cache)
    save_index(grown, index_dir)
    assert len(counting.encoded) == len(grown.doc_rows[last.doc_id])
    kept = live_folder(index_dir) / "segments" / base.segments[0].name / "passages.jsonl"
    assert kept.stat().st_ino == old_inode  # hard-linked, not rewritten

    loaded = load_index(index_dir, embedder.name, embedder.dim)
    assert list(loaded.passages) == list(grown.passages) and set(loaded.documents) == set(grown.documents)
    for query in QUERIES:
        assert _ranked_ids(loaded, query, "hybrid") == _ranked_ids(grown, query, "hybrid")


def test_many_additions_are_merged_into_few_segments_and_survive_a_round_trip(tmp_path, tiny_docs, embedder):
    """One segment per upload would slow every query; neighbours are merged past MAX_SEGMENTS."""
    from dataclasses import replace as with_changes

    copies = [with_changes(d, doc_id=f"{d.doc_id}-{i}") for i in range(4) for d in tiny_docs]
    data = build_index(copies[:1], embedder)
    for doc in copies[1:]:
        data = add_documents(data, [doc], embedder)
    data = remove_documents(data, [copies[3].doc_id, copies[7].doc_id])
    assert len(data.segments) <= MAX_SEGMENTS
    assert data.passage_count == sum(len(r) for r in data.doc_rows.values()) == len(data.vectors)
    fresh = build_index([d for d in copies if d.doc_id not in (copies[3].doc_id, copies[7].doc_id)], embedder)
    assert data.passage_count == fresh.passage_count
    save_index(data, tmp_path / "index")
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert set(loaded.documents) == set(fresh.documents) and loaded.removed == data.removed
    for query in QUERIES:
        scores = [s for _, s in _ranked_ids(loaded, query, "bm25")]
        assert scores == [s for _, s in _ranked_ids(fresh, query, "bm25")]


def test_load_rebuilds_the_config_so_an_unchanged_index_is_not_rebuilt(tmp_path, tiny_docs, embedder):
    config = IndexConfig(vector_index="auto", auto_threshold=1000)
    save_index(build_index(tiny_docs, embedder, config), tmp_path / "index")
    assert load_index(tmp_path / "index", embedder.name, embedder.dim).config == config


def test_a_large_build_is_cut_into_segments_built_in_parallel_without_changing_results(
        tiny_docs, embedder, monkeypatch, tmp_path):
    single = build_index(tiny_docs, embedder)
    monkeypatch.setattr(build, "SEGMENT_ROWS", 4)  # the tiny documents hold 3-6 passages each
    split = build_index(tiny_docs, embedder)
    assert len(split.segments) == len(tiny_docs)  # cut at document boundaries, one worker process each
    assert list(split.passages) == list(single.passages) and split.doc_rows == single.doc_rows
    for query in QUERIES:
        for mode in ("hybrid", "bm25"):
            assert _ranked_ids(split, query, mode) == _ranked_ids(single, query, mode)
    save_index(split, tmp_path / "index")
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert [s.name for s in loaded.segments] == [s.name for s in split.segments]


# --- BM25 pruning on the tiny corpus, and its per-term bounds on disk ----------------------------------------------


def _same_keyword_results(data, queries: list[str], doc_ids: list[str] | None = None) -> None:
    """Pruned keyword search gives exactly what scoring every posting gives, at every depth."""
    rows = data._rows_of(doc_ids)
    for query in queries:
        for n in (1, 3, 10, 50):
            expected = dict(data.bm25.search(query, n, rows=rows, prune=False))
            assert data.keyword_search(query, n, doc_ids) == expected, (query, n, doc_ids)


def _tiny_queries(data) -> list[str]:
    """The test questions plus pieces of the indexed passages themselves (many shared terms)."""
    return [*QUERIES, *(data.index_text(row)[5:25] for row in range(0, len(data.passages), 3))]


@pytest.mark.parametrize("exhaustive_below", [0.0, bm25.EXHAUSTIVE_BELOW])
def test_pruned_keyword_search_equals_exhaustive_on_the_tiny_corpus(tiny_docs, doc_by_file, embedder, monkeypatch,
                                                                    exhaustive_below):
    monkeypatch.setattr(bm25, "EXHAUSTIVE_BELOW", exhaustive_below)
    *first, last = tiny_docs
    grown = add_documents(build_index(first, embedder), [last], embedder)  # a second segment
    news = doc_by_file["c_qinghe_news.txt"].doc_id
    shrunk = remove_documents(grown, [news])  # dead rows in the first segment
    for data in (build_index(tiny_docs, embedder), grown, shrunk):
        queries = _tiny_queries(data)
        _same_keyword_results(data, queries)
        for doc in data.documents.values():
            _same_keyword_results(data, queries[:6], [doc.doc_id])
        _same_keyword_results(data, queries[:6], list(data.documents)[:2])
    assert not set(shrunk.keyword_search("清河镇乡村振兴推进会", 50)) & set(grown.doc_rows[news])


def test_segments_save_their_bounds_under_checksum(saved, embedder):
    index_dir, _ = saved
    manifest = json.loads((live_folder(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    assert {"bm25/max_tf.npy", "bm25/min_len.npy"} <= {n.split("/", 2)[-1] for n in manifest["checksums"]}
    flip_tail(segment_file(index_dir, "bm25/max_tf.npy"), start=130)
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(index_dir, embedder.name, embedder.dim)


def _drop_bounds(index_dir: Path) -> None:
    """Make the live version look like one saved before segments had bounds: no files, no checksums."""
    folder = live_folder(index_dir)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name in [n for n in manifest["checksums"] if n.endswith(("/max_tf.npy", "/min_len.npy"))]:
        (folder / name).unlink()
        del manifest["checksums"][name]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


def test_an_index_saved_without_bounds_loads_and_gets_them_on_the_next_save(saved, tiny_docs, embedder):
    index_dir, data = saved
    _drop_bounds(index_dir)
    old = load_index(index_dir, embedder.name, embedder.dim)  # bounds computed from the postings
    queries = _tiny_queries(data)
    for query in queries:
        assert old.keyword_search(query, 10) == data.keyword_search(query, 10)
    extra = build_index(tiny_docs[:1], embedder)
    doc = next(iter(extra.documents.values()))
    from dataclasses import replace as with_changes

    grown = add_documents(old, [with_changes(doc, doc_id=f"{doc.doc_id}-copy")], embedder)
    save_index(grown, index_dir)  # the old segment is linked, and its bounds written beside it
    manifest = json.loads((live_folder(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    first = f"segments/{old.segments[0].name}/bm25/"
    assert {f"{first}max_tf.npy", f"{first}min_len.npy"} <= set(manifest["checksums"])
    loaded = load_index(index_dir, embedder.name, embedder.dim)
    np.testing.assert_array_equal(loaded.bm25.segments[0].max_tf, data.bm25.segments[0].max_tf)
    np.testing.assert_array_equal(loaded.bm25.segments[0].min_len, data.bm25.segments[0].min_len)
    _same_keyword_results(loaded, queries)
    for query in queries:
        assert loaded.keyword_search(query, 10) == grown.keyword_search(query, 10)
