"""Pure score-fusion functions for combining rankings (e.g. BM25 and dense retrieval).

Items are integer ids (passage rows). Every function returns ``(id, fused_score)`` pairs sorted by
descending score, ties broken by ascending id so results are deterministic across runs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

__all__ = ["RRF_K", "minmax", "rrf", "weighted_sum"]

# Reciprocal-rank-fusion constant from Cormack, Clarke & Buettcher (SIGIR 2009), "Reciprocal Rank Fusion
# outperforms Condorcet and individual rank learning methods": score = sum 1 / (k + rank). k=60 damps the
# advantage of the very top ranks so that one system's rank 1 does not outvote agreement lower down;
# they found k=60 near-optimal and not sensitive, and it is the common default since.
RRF_K = 60


def minmax(scores: dict[int, float]) -> dict[int, float]:
    """Min-max normalise scores to [0, 1] over the items given.

    Args:
        scores: ``{id: score}``; may be empty.

    Returns:
        ``{id: (score - min) / (max - min)}``. When all scores are equal (including a single item) every
        item gets 1.0: it is as good as the best item of its list.
    """
    if not scores:
        return {}
    lo = min(scores.values())
    hi = max(scores.values())
    span = hi - lo
    if span <= 0.0:
        return {i: 1.0 for i in scores}
    return {i: (s - lo) / span for i, s in scores.items()}


def weighted_sum(rankings: Sequence[dict[int, float]], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Fuse scored rankings by a weighted sum of min-max normalised scores.

    Each ranking is normalised over the items it holds; an item missing from a ranking contributes 0
    for it (it was not retrieved there, which is at least as bad as the ranking's worst item).

    Args:
        rankings: one ``{id: score}`` per system.
        weights: one weight per ranking, each in [0, 1].

    Returns:
        ``(id, fused_score)`` for every id in any ranking, best first, ties by id.

    Raises:
        ValueError: if the lengths differ or a weight is outside [0, 1].
    """
    if len(rankings) != len(weights):
        raise ValueError(f"got {len(rankings)} rankings but {len(weights)} weights; lengths must match")
    _check_weights(weights)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for item, score in minmax(ranking).items():
            fused[item] = fused.get(item, 0.0) + weight * score
    return _sorted(fused)


def rrf(
    rankings: Sequence[Sequence[int]],
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``score(id) = sum_i weight_i / (k + rank_i(id))`` with 1-based ranks.

    Uses ranks only, so it needs no score calibration between systems. If an id repeats within one
    ranking, only its first (best) rank counts.

    Args:
        rankings: one list of ids per system, best first.
        k: rank damping constant, >= 0 (see :data:`RRF_K`).
        weights: one weight per ranking, each in [0, 1]; default 1.0 for all.

    Returns:
        ``(id, fused_score)`` for every id in any ranking, best first, ties by id.

    Raises:
        ValueError: if ``k`` < 0, the lengths differ, or a weight is outside [0, 1].
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k={k!r} is out of range; allowed: integer k >= 0")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(rankings) != len(weights):
        raise ValueError(f"got {len(rankings)} rankings but {len(weights)} weights; lengths must match")
    _check_weights(weights)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        seen: set[int] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return _sorted(fused)


def _check_weights(weights: Sequence[float]) -> None:
    for i, w in enumerate(weights):
        if not (isinstance(w, numbers.Real) and math.isfinite(w) and 0.0 <= w <= 1.0):
            raise ValueError(f"weights[{i}]={w!r} is out of range; allowed: 0 <= weight <= 1")


def _sorted(fused: dict[int, float]) -> list[tuple[int, float]]:
    # Ties by ascending id: dict order depends on input order, which must not change the result.
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
