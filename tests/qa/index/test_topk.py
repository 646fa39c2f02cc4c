"""Tests for qa.index.topk: the selection both BM25 paths share."""

from __future__ import annotations

import numpy as np
import pytest

from qa.index.topk import check_k, sorted_unique, top_k, top_of_rows


@pytest.mark.parametrize("size", [0, 1, 2, 50, 5000])
def test_sorted_unique_is_np_unique(size: int) -> None:
    rng = np.random.default_rng(size)
    rows = rng.integers(0, max(size // 3, 1), size).astype(np.int64)  # many repeats
    assert np.array_equal(sorted_unique(rows.copy()), np.unique(rows))


def test_top_of_candidate_rows_equals_top_k_of_the_whole_array() -> None:
    """The pruned path ranks its candidates exactly as the exhaustive path ranks every row, ties included."""
    rng = np.random.default_rng(0)
    scores = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0], 400).astype(np.float32)  # few values: many ties, zeros
    rows = np.flatnonzero(scores)
    for k in (1, 3, 10, 50, 400, 1000):
        assert top_of_rows(rows, scores[rows], k) == top_k(scores, k)
    assert top_k(np.zeros(5, np.float32), 3) == [] and top_of_rows(np.zeros(0, np.int64), np.zeros(0), 3) == []


@pytest.mark.parametrize("k", [0, -1, 2.0, None])
def test_check_k_refuses_what_is_not_a_positive_integer(k) -> None:
    with pytest.raises(ValueError, match="out of range"):
        check_k(k)
