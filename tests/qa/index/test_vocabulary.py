"""The vocabulary learned from indexed documents: what is learned, how it follows adds, deletes, merges and reloads."""

from __future__ import annotations

import json
import re
from dataclasses import replace as with_changes
from pathlib import Path

import pytest

from qa.config import SAMPLE_CORPUS
from qa.errors import IndexCorruptError
from qa.index import build
from qa.index.build import add_documents, build_index, remove_documents
from qa.index.tokenize import content_terms
from qa.index.versions import load_index, save_index
from qa.index.vocabulary import VOCABULARY_FILE, LearnSettings, SegmentVocabulary, Vocabulary, learn_segment
from qa.ingest.reader import load_documents
from qa.text import normalize


@pytest.fixture(scope="module")
def sample_docs():
    return load_documents([SAMPLE_CORPUS]).documents


@pytest.fixture(scope="module")
def learned(sample_docs) -> SegmentVocabulary:
    return learn_segment([d.text for d in sample_docs], range(len(sample_docs)))


def test_learning_finds_the_corpus_terms(learned):
    """Multi-character terms of the five sample speeches, none of them in a hand-written list any more."""
    terms = set(learned.terms)
    assert {"营商环境", "社会消费品零售总额", "防汛抗旱", "古塔区", "复工复产", "固定资产投资", "疫情防控"} <= terms
    assert all(2 <= len(t) <= LearnSettings().max_len for t in terms)


def test_learned_terms_are_not_fragments(learned, sample_docs):
    """No term cuts a word: it is never always preceded, or always followed, by the same character."""
    text = "\n".join(normalize(d.text) for d in sample_docs)
    for fragment in ("营商环", "商环境", "消费品零售总", "深入推", "古塔区的", "复工复"):
        assert fragment not in learned.terms

    def variety(neighbours: list[str]) -> int:
        """Different neighbours: ideographs by value, digits as one, anything else (a boundary) each apart."""
        cjk = {"0" if c.isdigit() else c for c in neighbours if c.isdigit() or "\u4e00" <= c <= "\u9fff"}
        return len(cjk) + sum(not (c.isdigit() or "\u4e00" <= c <= "\u9fff") for c in neighbours)

    for term in learned.terms:
        found = list(re.finditer(re.escape(term), text))
        assert variety([text[m.start() - 1] if m.start() else "" for m in found]) >= 2, term
        assert variety([text[m.end()] if m.end() < len(text) else "" for m in found]) >= 2, term
        assert term[0] != "的" and term[-1] != "的" and "是" not in term


def test_learning_a_corpus_without_repeats_finds_nothing():
    assert len(learn_segment(["春眠不觉晓，处处闻啼鸟。", "夜来风雨声，花落知多少。"], [0, 1])) == 0
    assert len(learn_segment([], [])) == 0


@pytest.mark.parametrize("texts", [["cookie"], ["cookie cookie cookie", "12345 12345"], [""], ["。。。"]])
def test_text_without_chinese_learns_nothing(texts):
    # An English, numeric or empty document is indexed like any other; it just teaches no terms.
    assert len(learn_segment(texts, range(len(texts)))) == 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_count"):
        LearnSettings(min_count=1)
    with pytest.raises(ValueError, match="max_len"):
        LearnSettings(max_len=1)


def test_terms_know_their_documents(learned, sample_docs):
    live = learned.live()
    assert live["古塔区"] >= 2
    holders = {i for i, d in enumerate(sample_docs) if "古塔区" in normalize(d.text)}
    assert learned.live(holders).get("古塔区") is None  # every document holding it deleted: gone


def test_the_index_keeps_its_vocabulary_through_adds_deletes_and_reloads(tmp_path: Path, sample_docs, embedder):
    by_file = {Path(d.source).name: d for d in sample_docs}
    gu_ta = [d for d in sample_docs if "古塔区" in normalize(d.text)]
    others = [d for d in sample_docs if d not in gu_ta]
    data = build_index(others, embedder, embed=False)
    assert "古塔区" not in data.vocabulary.counts
    data = add_documents(data, gu_ta, embedder, embed=False)  # a second segment, with its own terms
    assert len(data.segments) == 2 and "古塔区" in data.vocabulary.counts
    save_index(data, tmp_path / "index")
    folder = data.segments[1].folder
    assert (folder / VOCABULARY_FILE).is_file() and VOCABULARY_FILE in data.segments[1].checksums
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert loaded.vocabulary.counts == data.vocabulary.counts
    removed = remove_documents(loaded, [d.doc_id for d in gu_ta])
    assert "古塔区" not in removed.vocabulary.counts  # only the deleted documents held it
    assert removed.vocabulary.counts.get("复工复产") == data.vocabulary.counts["复工复产"] - sum(
        d.text.count("复工复产") for d in gu_ta)
    save_index(removed, tmp_path / "index")
    again = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert again.vocabulary.counts == removed.vocabulary.counts
    assert by_file  # (documents are addressed by id above; the sample corpus has several)


def test_merging_segments_keeps_the_live_documents_terms(sample_docs, embedder, monkeypatch):
    """The same uploads and delete give the same vocabulary whether small segments are merged or not."""
    copies = [with_changes(d, doc_id=f"{d.doc_id}-{i}") for i in range(2) for d in sample_docs]

    def grow() -> object:
        data = build_index(copies[:1], embedder, embed=False)
        for doc in copies[1:]:
            data = add_documents(data, [doc], embedder, embed=False)
            if doc is copies[3]:
                data = remove_documents(data, [copies[0].doc_id])
        return data

    monkeypatch.setattr(build, "MAX_SEGMENTS", 100)
    apart = grow()
    monkeypatch.setattr(build, "MAX_SEGMENTS", 2)
    merged = grow()
    assert len(merged.segments) < len(apart.segments) == len(copies)
    assert merged.vocabulary.counts == apart.vocabulary.counts
    assert "复工复产" in merged.vocabulary.counts
    # The deleted document's occurrences are not counted.
    assert merged.vocabulary.counts["复工复产"] <= sum(d.text.count("复工复产") for d in copies[1:])


def test_an_index_saved_without_vocabularies_learns_them_at_load(tmp_path: Path, sample_docs, embedder):
    data = build_index(sample_docs, embedder, embed=False)
    save_index(data, tmp_path / "index")
    folder = data.segments[0].folder
    (folder / VOCABULARY_FILE).unlink()
    manifest_path = folder.parents[1] / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["checksums"] = {k: v for k, v in manifest["checksums"].items() if not k.endswith(VOCABULARY_FILE)}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    loaded = load_index(tmp_path / "index", embedder.name, embedder.dim)
    assert loaded.vocabulary.counts == data.vocabulary.counts
    save_index(loaded, tmp_path / "index")  # the linked segment gets its vocabulary file now
    assert (loaded.segments[0].folder / VOCABULARY_FILE).is_file()


def test_a_corrupted_vocabulary_is_refused(tmp_path: Path, sample_docs, embedder):
    data = build_index(sample_docs, embedder, embed=False)
    save_index(data, tmp_path / "index")
    (data.segments[0].folder / VOCABULARY_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="rebuild"):
        load_index(tmp_path / "index", embedder.name, embedder.dim)


def test_two_indexes_in_one_process_keep_their_own_words(sample_docs, embedder):
    """jieba's dictionary is shared by the process; each index's words reach query analysis only through it."""
    gu_ta = [d for d in sample_docs if "古塔区" in normalize(d.text)]
    others = [d for d in sample_docs if d not in gu_ta]
    first, second = build_index(gu_ta, embedder, embed=False), build_index(others, embedder, embed=False)
    own = [w for w in first.vocabulary.words if w not in second.vocabulary.words and len(w) >= 4]
    assert own
    word = own[0]
    assert word in [t.word for t in content_terms(f"{word}的情况", first.vocabulary)]
    assert word not in [t.word for t in content_terms(f"{word}的情况", second.vocabulary)]
    assert word not in [t.word for t in content_terms(f"{word}的情况")]


def test_words_of_the_jieba_dictionary_are_left_to_jieba():
    vocabulary = Vocabulary({"经济": 9, "古塔化工园": 2})
    assert vocabulary.words == {"古塔化工园": "n"}
