"""Tests for qa.evaluate.metrics, following the dev set's hit rule."""

from __future__ import annotations

import pytest

from qa.evaluate.metrics import (
    contains_evidence,
    first_hit_rank,
    hit_at_k,
    mrr_at_k,
    percentile,
    same_document,
)


def test_first_hit_rank_normalises_both_sides() -> None:
    passages = ["无关内容。", "问题关于党的建设方面的有 22\n个，占总体", "再一个"]
    assert first_hit_rank(passages, ["党的建设方面的有22个"]) == 2
    assert first_hit_rank(["落实＂两个责任＂。"], ['落实"两个责任"']) == 1


def test_first_hit_rank_any_evidence_and_misses() -> None:
    passages = ["甲乙丙", "丁戊己"]
    assert first_hit_rank(passages, ["不在", "戊己"]) == 2
    assert first_hit_rank(passages, ["不在"]) is None
    assert first_hit_rank(passages, []) is None
    assert first_hit_rank(passages, ["  "]) is None  # blank evidence never hits everything
    assert first_hit_rank([], ["甲"]) is None


def test_first_hit_rank_skips_passages_from_other_documents() -> None:
    passages = ["2008年上线", "其他内容", "袋鼠2008年大增"]
    assert first_hit_rank(passages, ["2008年"]) == 1
    assert first_hit_rank(passages, ["2008年"], in_doc=[False, True, True]) == 3
    assert first_hit_rank(passages, ["2008年"], in_doc=[False, True, False]) is None
    with pytest.raises(ValueError, match="one per passage"):
        first_hit_rank(passages, ["2008年"], in_doc=[True])


def test_contains_evidence_normalises_like_the_hit_rule() -> None:
    assert contains_evidence("答：确诊病例 12\n个。", ["确诊病例12个"])
    assert contains_evidence("ＡＢＣ２０２３年", ["ABC2023年", "不在"])
    assert not contains_evidence("不知道：文档中没有相关内容。", ["相关内容在此"])
    assert not contains_evidence("任何文字", [])
    assert not contains_evidence("任何文字", ["  "])


@pytest.mark.parametrize(("wanted", "source", "same"), [
    ("TRIAL_800.txt", "/data/corpus/TRIAL_800.txt", True),
    ("TRIAL_800", "/data/corpus/TRIAL_800.txt", True),          # question without the extension
    ("TRIAL_800.txt", "TRIAL_800", True),                       # source without it (BEIR-style ids)
    ("corpus/TRIAL_800.txt", "C:\\docs\\TRIAL_800.txt", True),  # only the last path part counts
    ("TRIAL_800.txt", "/data/corpus/TRIAL_8000.txt", False),
    ("TRIAL_800.txt", "/data/corpus/TRIAL_800.md", False),      # another file with the same stem
    ("TRIAL_80", "/data/corpus/TRIAL_800.txt", False),
    ("", "/data/corpus/TRIAL_800.txt", False),
])
def test_same_document(wanted: str, source: str, same: bool) -> None:
    assert same_document(wanted, source) is same


def test_same_document_compares_unicode_nfc() -> None:
    import unicodedata

    name = "報告é.txt"
    assert same_document(unicodedata.normalize("NFD", name), f"/x/{unicodedata.normalize('NFC', name)}")


def test_hit_at_k_and_mrr() -> None:
    ranks = [1, 2, None, 11]
    assert hit_at_k(ranks, 1) == 0.25
    assert hit_at_k(ranks, 2) == 0.5
    assert hit_at_k(ranks, 20) == 0.75
    assert mrr_at_k(ranks) == pytest.approx((1 + 0.5) / 4)
    assert mrr_at_k(ranks, k=20) == pytest.approx((1 + 0.5 + 1 / 11) / 4)


def test_empty_ranks() -> None:
    assert hit_at_k([], 5) == 0.0
    assert mrr_at_k([]) == 0.0


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k >= 1"):
        hit_at_k([1], k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k >= 1"):
        mrr_at_k([1], k)  # type: ignore[arg-type]


def test_bad_ranks() -> None:
    with pytest.raises(ValueError, match=r"ranks\[1\]=0 is invalid"):
        hit_at_k([1, 0], 1)


def test_percentile_matches_linear_interpolation() -> None:
    values = [10.0, 1.0, 4.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 50) == pytest.approx(3.5)
    assert percentile(values, 95) == pytest.approx(4.0 + 0.85 * 6.0)
    assert percentile([7], 95) == 7.0


def test_percentile_validation() -> None:
    with pytest.raises(ValueError, match="values is empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="p=101 is out of range"):
        percentile([1.0], 101)
