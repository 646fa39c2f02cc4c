"""Tests for qa.search.fusion: min-max, weighted sum and reciprocal rank fusion."""

from __future__ import annotations

import math

import pytest

from qa.search.fusion import RRF_K, minmax, rrf, weighted_sum


def test_minmax_scales_to_unit_interval() -> None:
    assert minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}


def test_minmax_all_equal_gives_one() -> None:
    assert minmax({7: 3.0, 8: 3.0}) == {7: 1.0, 8: 1.0}
    assert minmax({7: -1.0}) == {7: 1.0}


def test_minmax_empty() -> None:
    assert minmax({}) == {}


def test_weighted_sum_missing_items_count_zero() -> None:
    bm25 = {1: 10.0, 2: 5.0, 3: 0.0}
    dense = {2: 0.9, 4: 0.5}
    fused = dict(weighted_sum([bm25, dense], [0.7, 0.3]))
    assert fused[1] == pytest.approx(0.7)
    assert fused[2] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert fused[3] == pytest.approx(0.0)
    assert fused[4] == pytest.approx(0.0)


def test_weighted_sum_sorted_with_deterministic_ties() -> None:
    result = weighted_sum([{5: 1.0, 3: 1.0, 9: 0.0}], [1.0])
    assert result == [(3, 1.0), (5, 1.0), (9, 0.0)]
    assert weighted_sum([{3: 1.0, 5: 1.0}], [1.0]) == weighted_sum([{5: 1.0, 3: 1.0}], [1.0])


def test_weighted_sum_validation() -> None:
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        weighted_sum([{1: 1.0}, {2: 1.0}], [1.0])
    with pytest.raises(ValueError, match=r"weights\[1\]=1\.5 is out of range"):
        weighted_sum([{1: 1.0}, {2: 1.0}], [0.5, 1.5])
    with pytest.raises(ValueError, match=r"weights\[0\]=-0\.1"):
        weighted_sum([{1: 1.0}], [-0.1])
    with pytest.raises(ValueError, match="nan"):
        weighted_sum([{1: 1.0}], [math.nan])


def test_weighted_sum_empty() -> None:
    assert weighted_sum([], []) == []
    assert weighted_sum([{}, {}], [0.5, 0.5]) == []


def test_rrf_formula() -> None:
    fused = dict(rrf([[1, 2, 3], [3, 1]]))
    assert RRF_K == 60
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)


def test_rrf_order_weights_and_ties() -> None:
    assert [i for i, _ in rrf([[1, 2], [2, 1]])] == [1, 2]  # equal scores -> lower id first
    assert [i for i, _ in rrf([[1, 2], [2, 1]], weights=[0.2, 1.0])] == [2, 1]
    assert rrf([[4], [4]], k=0) == [(4, 2.0)]


def test_rrf_counts_first_occurrence_only() -> None:
    assert dict(rrf([[1, 1, 2]]))[1] == pytest.approx(1 / 61)


def test_rrf_validation() -> None:
    with pytest.raises(ValueError, match="k=-1 is out of range"):
        rrf([[1]], k=-1)
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        rrf([[1], [2]], weights=[1.0])
    with pytest.raises(ValueError, match=r"weights\[0\]=2"):
        rrf([[1]], weights=[2])


def test_rrf_empty() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []
