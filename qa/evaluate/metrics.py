"""Pure retrieval metrics, following the dev set's rules (``/work/shared/eval/README.md``).

A ranked passage *hits* a question when it contains one of the question's evidence strings after
:func:`qa.text.evidence_norm` (NFKC, all whitespace removed) on both sides and, when the question names its
documents, comes from one of them (:func:`same_document`; the CMRC trial set's rule). Ranks are 1-based; ``None``
means no hit in the ranked list.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

from qa.text import evidence_norm

__all__ = ["contains_evidence", "first_hit_rank", "hit_at_k", "mrr_at_k", "percentile", "same_document"]


def first_hit_rank(ranked_texts: Sequence[str], evidence: Sequence[str],
                   in_doc: Sequence[bool] | None = None) -> int | None:
    """Return the 1-based rank of the first passage containing any evidence string, or None.

    Args:
        ranked_texts: passage texts, best first.
        evidence: evidence strings; any one is enough. Empty (unanswerable) -> None.
        in_doc: per passage, whether it comes from one of the question's documents; a passage from another
            document never hits. None: any document may hit.
    """
    needles = _needles(evidence)
    if not needles:
        return None
    if in_doc is not None and len(in_doc) != len(ranked_texts):
        raise ValueError(f"in_doc has {len(in_doc)} entries for {len(ranked_texts)} passages; need one per passage")
    for rank, text in enumerate(ranked_texts, start=1):
        if in_doc is not None and not in_doc[rank - 1]:
            continue
        haystack = evidence_norm(text)
        if any(n in haystack for n in needles):
            return rank
    return None


def contains_evidence(text: str, evidence: Sequence[str]) -> bool:
    """Whether ``text`` (e.g. the answer a user reads) contains any evidence string, normalised as for hits."""
    haystack = evidence_norm(text)
    return any(n in haystack for n in _needles(evidence))


def same_document(wanted: str, source: str) -> bool:
    """Whether the file name a question gives (``wanted``) names the document read from ``source``.

    Both are compared by their last path part (Unicode NFC); a name without an extension also matches the file
    name without its extension (``TRIAL_800`` names ``corpus/TRIAL_800.txt``, and ``TRIAL_800.txt`` a document
    whose source is ``TRIAL_800``). Different extensions do not match.
    """
    a, b = _file_name(wanted), _file_name(source)
    if not a or not b:
        return False
    return a == b or ("." not in a and a == _stem(b)) or ("." not in b and b == _stem(a))


def _needles(evidence: Sequence[str]) -> list[str]:
    return [n for n in (evidence_norm(e) for e in evidence) if n]


def _file_name(path: str) -> str:
    return unicodedata.normalize("NFC", re.split(r"[\\/]", path.strip())[-1])


def _stem(name: str) -> str:
    head, dot, _ = name.rpartition(".")
    return head if dot and head else name


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
