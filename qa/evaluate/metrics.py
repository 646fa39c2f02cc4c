"""Pure retrieval metrics, following the dev set's rules (``/work/shared/eval/README.md``).

A ranked passage *hits* a question when it contains one of the question's evidence strings after
:func:`qa.text.evidence_norm` (NFKC, all whitespace removed) on both sides. Ranks are 1-based; ``None``
means no hit in the ranked list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qa.text import evidence_norm

__all__ = ["first_hit_rank", "hit_at_k", "mrr_at_k", "percentile"]


def first_hit_rank(ranked_texts: Sequence[str], evidence: Sequence[str]) -> int | None:
    """Return the 1-based rank of the first passage containing any evidence string, or None.

    Args:
        ranked_texts: passage texts, best first.
        evidence: evidence strings; any one is enough. Empty (unanswerable) -> None.
    """
    needles = [n for n in (evidence_norm(e) for e in evidence) if n]
    if not needles:
        return None
    for rank, text in enumerate(ranked_texts, start=1):
        haystack = evidence_norm(text)
        if any(n in haystack for n in needles):
            return rank
    return None


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first hit is within the top ``k``.

    Args:
        ranks: first-hit rank per question (None = no hit).
        k: cut-off, >= 1.

    Returns:
        A value in [0, 1]; 0.0 for an empty ``ranks``.
    """
    _check_k(k)
    _check_ranks(ranks)
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr_at_k(ranks: Sequence[int | None], k: int = 10) -> float:
    """Mean reciprocal rank with cut-off: mean of ``1/rank`` if rank <= k else 0.

    Args:
        ranks: first-hit rank per question (None = no hit).
        k: cut-off, >= 1; 10 is the dev set's MRR@10.

    Returns:
        A value in [0, 1]; 0.0 for an empty ``ranks``.
    """
    _check_k(k)
    _check_ranks(ranks)
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile with linear interpolation between order statistics (numpy's default).

    Args:
        values: at least one number.
        p: percentile in [0, 100], e.g. 50 for the median, 95 for p95 latency.

    Raises:
        ValueError: if ``values`` is empty or ``p`` is outside [0, 100].
    """
    if not values:
        raise ValueError("values is empty; need at least 1 value for a percentile")
    if not (math.isfinite(p) and 0.0 <= p <= 100.0):
        raise ValueError(f"p={p!r} is out of range; allowed: 0 <= p <= 100")
    ordered = sorted(values)
    # Position on the 0..n-1 scale: p=0 -> smallest, p=100 -> largest, in between interpolate.
    pos = (len(ordered) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is out of range; allowed: integer k >= 1")


def _check_ranks(ranks: Sequence[int | None]) -> None:
    for i, r in enumerate(ranks):
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1):
            raise ValueError(f"ranks[{i}]={r!r} is invalid; allowed: None or integer rank >= 1")
