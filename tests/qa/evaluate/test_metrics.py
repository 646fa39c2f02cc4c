"""Tests for qa.evaluate.metrics, following the dev set's hit rule."""

from __future__ import annotations

import pytest

from qa.evaluate.metrics import first_hit_rank, hit_at_k, mrr_at_k, percentile


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
