"""Sentence vectors: every sentence of every passage gets its own vector, and a passage is scored by its best one.

A passage of ~300 characters mixes several statements; its one vector is an average that matches none of them well.
Scoring a passage by its best sentence (max-sim), mixed with its own vector, finds the statement a question asks
about. It is optional (`IndexConfig.sentence_vectors`): the sentences hold about as many tokens as the passages, so
it doubles the encoding at index time. (A passage vector derived from its sentence vectors, their normalized mean,
would avoid that, but ranked clearly worse than the encoded one: see bench/README.md.)

Sentence ids in the sentence vector index are ``row << SENTENCE_BITS | j`` (j-th sentence of passage row `row`),
so the passage of a sentence hit is one shift away and no mapping file is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from qa.text import normalize, split_sentences
from qa.types import Passage

# Up to 2**16 sentences per passage (a 5000-character passage cut hard has at most 5000), 2**47 passage rows.
SENTENCE_BITS = 16
MAX_SENTENCES = 1 << SENTENCE_BITS


def passage_sentences(passage: Passage, index_text: str) -> list[str]:
    """The normalized sentences of a passage, in order; the text the embedder sees for each.

    Split on the original text (line ends are sentence ends there, and `normalize` turns them into spaces). A
    passage with no sentence text, or one sentence, is its index text (so a title block keeps its metadata labels).
    """
    sentences = [s for a, b in split_sentences(passage.text) if (s := normalize(passage.text[a:b]))]
    if len(sentences) <= 1:
        return [index_text]
    return sentences[:MAX_SENTENCES]


def sentences_of(passages: Sequence[Passage], texts: Sequence[str]) -> list[list[str]]:
    """`passage_sentences` for each passage, with the index texts `cut_index_passages` gave."""
    return [passage_sentences(p, t) for p, t in zip(passages, texts, strict=True)]


def sentence_ids(rows: Sequence[int] | np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """The sentence ids of `rows`, `counts[i]` sentences for `rows[i]`, row by row."""
    rows_arr = np.asarray(rows, dtype=np.int64)
    counts_arr = np.asarray(counts, dtype=np.int64)
    if len(rows_arr) != len(counts_arr):
        raise ValueError(f"got {len(rows_arr)} rows but {len(counts_arr)} sentence counts")
    if counts_arr.size and (counts_arr.min() < 1 or counts_arr.max() > MAX_SENTENCES):
        raise ValueError(f"each passage needs 1 to {MAX_SENTENCES} sentences")
    owners = np.repeat(rows_arr, counts_arr)
    starts = np.repeat(np.cumsum(counts_arr) - counts_arr, counts_arr)
    return (owners << SENTENCE_BITS) | (np.arange(owners.size, dtype=np.int64) - starts)


def rows_of_sentences(ids: np.ndarray) -> np.ndarray:
    """The passage row of each sentence id."""
    return np.asarray(ids, dtype=np.int64) >> SENTENCE_BITS


def group_max(hits: Iterable[tuple[int, float]], group_of: Callable[[int], int]) -> dict[int, float]:
    """Max-sim: each group's score is the best score of its members (a passage scored by its best sentence).

    Args:
        hits: ``(member id, score)`` pairs, e.g. sentence hits of a vector search, in any order.
        group_of: the group (passage row) of a member id.

    Returns:
        ``{group: best member score}`` for every group with a member in `hits`.
    """
    best: dict[int, float] = {}
    for member, score in hits:
        group = group_of(member)
        if group not in best or score > best[group]:
            best[group] = score
    return best


def mix(best: dict[int, float], base: dict[int, float], weight: float) -> dict[int, float]:
    """``weight * best + (1 - weight) * base`` for every id of `best` (an id missing from `base` counts `best`).

    Raises:
        ValueError: `weight` outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return {i: weight * s + (1.0 - weight) * base.get(i, s) for i, s in best.items()}
