"""Structure questions: how a document, or one of its sections, is organised, answered from its outline.

`讲了哪几点`, `分几个部分`, `主要讲了哪些方面`, `“优化政务服务”部分提出了哪几项措施`: the answer is a list of headings,
which the outline (`qa.ingest.sections`) already holds with their offsets; the passages ranked by retrieval are the
title block or the opening paragraph, which only announce the points (`我提以下几点意见`).

1. Detection (`is_structure_question`): a count or "which" word before a unit of organisation (`几点`, `哪些方面`,
   `几个部分`, `哪几项措施`) that ends the question or precedes what was said, a question about the organisation
   itself (`结构是怎样的`), or one asking what a numbered part holds (`第四部分包括哪些要求`). The vocabulary of the kind is
   written once, below; nothing is specific to one document.
2. Scope (`choose_scope`): the question without that vocabulary (`宋晓东的讲话分为几个部分` -> `宋晓东`) is matched,
   by character bigrams, against each candidate document's naming text (title, speaker, place, date) and each of
   its section headings. Candidates are the documents of the retrieved hits, best first, plus those whose speaker or
   place the question names. The scope is the document (its top-level headings) or the section (its child
   headings) whose text holds most of what the question says; at least half of it (`MIN_SCOPE_COVERAGE`) must be
   accounted for, or the question is about something the outline does not name and is answered as usual.
3. Answer (`outline_answer`): the headings in order, each with its offsets, and the passages that open those
   sections ranked first (the rest of the hits follow). When the scope is one heading without parts of its own,
   and some of its siblings name what it was chosen for too (`产城融合发展讲了哪几个方面`: six points of one part each
   say 产城融合发展), the question is about their common theme: those siblings are the answer. None when fewer than
   two headings remain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from qa.search.retriever import SearchIndex
from qa.text import normalize
from qa.types import Answer, AnswerSpan, Document, Hit, OutlineItem, Passage, Section

# Units of organisation a structure question counts or asks about. `项` not before 目 (项目), `点` not before a time
# word (几点钟, 几点开会), `条` not before 件/例 (条件, 条例).
_UNITS = r"(?:点(?![钟半开到前后])|部分|方面|板块|块|层面|层次|项(?!目)|条(?![件例])|章|节|篇)"
# A count or "which" word before a unit that ends the question or comes before what was said (`几点`, `哪几个方面`,
# `哪些方面的要求`, `几大板块`, `哪三项措施`), not before another noun (`几条跑道`, `几项指标`: those count things);
# or a question about the organisation itself (`结构是怎样的`).
_SAID = r"(?:意见|措施|要求|建议|内容|工作|任务|举措|问题|部署|目标)"
_STRUCTURE = re.compile(rf"(?:几|哪几|哪些|多少|哪[两二三四五六七八九十])个?大?{_UNITS}(?=$|[？?。！!，,]|的|{_SAID})"
                        r"|(?:结构|提纲|大纲|框架|脉络)(?:是|如何|怎样|怎么)"
                        rf"|第[一二三四五六七八九十\d]+个?{_UNITS}.*(?:哪些|哪几|什么)")
# The general vocabulary of the kind (question words, "said/proposed", "speech/part/measure", particles,
# demonstratives): removed before matching the rest of the question to titles and headings. Longer words first.
_KIND_WORDS = re.compile(
    r"请问|一共|总共|总体上?|整体上?|大致|大概|主要|重点|着重|分别|具体|围绕|全文|整篇|"
    r"讲话|发言|报告|文章|文件|会议|内容|要求|措施|工作|意见|问题|举措|任务|"
    r"分为|分成|划分|讲了|谈了|说了|提出了|提出|提了|包括|包含|涉及|部署了|部署|作了|做了|讲|谈|说|提|"
    r"结构|提纲|大纲|框架|脉络|"
    r"(?:这|那|该|本|此)(?:篇|个|份|次)?|"
    r"几|哪些|哪|多少|什么|怎样|如何|"
    + _UNITS
    + r"|的|了|是|有|中|里|上|在|对|从|关于|就|和|与|及|吗|呢|[，,。？?！!：:；;、“”\"'‘’《》()（）\s]"
)
_QUOTED = re.compile(r"[“\"「『‘]([^”\"」』’]{1,12})[”\"」』’]")
# A part named by its position: `第二部分`, `第三点`, `第1个方面`.
_CN_DIGITS = "一二三四五六七八九十"
_ORDINAL = re.compile(rf"第([{_CN_DIGITS}]|\d{{1,2}})个?{_UNITS}")
# The last part: `最后一部分`, `最后那部分`, `结尾这一点`, and with a few words between (`最后党建那部分`).
_LAST = re.compile(rf"(?:最后|末尾|结尾)[^，,。？?！!]{{0,4}}?(?:一|那|这)?一?个?{_UNITS}")
# Enumeration marks that open a heading (`一、`, `（一）`, `一是`, `第一，`, `1.`): not part of what it names.
_ENUMERATION = re.compile(r"^(?:第?[一二三四五六七八九十]+[、．.是要，,]?|[（(][一二三四五六七八九十\d]+[）)]|\d+[、．.])")
# Share of the question's remaining bigrams that the chosen scope (document naming + section heading) must hold.
MIN_SCOPE_COVERAGE = 0.5
# Share of a section heading's bigrams the question must hold to pick it by words its document's title also has.
RESTATED = 0.5
# Characters of a document's opening (before its first heading) read as part of what names it.
OPENING_CHARS = 300
# Documents of this many top hits are candidates.
CANDIDATE_HITS = 10


def is_structure_question(query: str) -> bool:
    """Whether `query` asks how something is organised (its points, parts, aspects), not about one fact."""
    return bool(_STRUCTURE.search(normalize(query)))


def structure_phrase(query: str) -> str:
    """The words that make `query` a structure question (`几个部分` of `宋晓东的讲话分为几个部分`), or ""."""
    m = _STRUCTURE.search(normalize(query))
    return m.group(0) if m else ""


def names_part(query: str) -> bool:
    """Whether `query` names a part by its position (`第二部分`, `第三点`)."""
    text = normalize(query)
    return _ORDINAL.search(text) is not None or _LAST.search(text) is not None


def _bigrams(text: str) -> set[str]:
    """Character bigrams inside runs of letters/digits/ideographs (none across punctuation or spaces)."""
    out: set[str] = set()
    for run in re.findall(r"[^\W_|]+", normalize(text)):
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    return out


def _quoted(text: str) -> set[str]:
    """Quoted words as terms of their own (`做好“稳”的文章`: the one character 稳 tells the parts apart)."""
    return {"“" + q for q in _QUOTED.findall(normalize(text))}


def _terms(text: str) -> set[str]:
    return _bigrams(text) | _quoted(text)


def question_terms(query: str) -> set[str]:
    """What the question names besides the vocabulary of its kind, as bigrams (`宋晓东的讲话分为几个部分` -> 宋晓, 晓东),
    and its quoted words."""
    # Cut with a mark, not a space: normalize() joins ideographs across spaces.
    text = _LAST.sub("|", _ORDINAL.sub("|", _STRUCTURE.sub("|", normalize(query))))
    return _bigrams(_KIND_WORDS.sub("|", text)) | _quoted(query)


def _read_naming(doc: Document) -> tuple[set[str], set[str]]:
    """Bigrams of what names a document: its title, speaker, place and date; and the same plus the opening words
    before its first heading, where a speech says what occasion it is (`全面总结了上半年的工作…再讲三点意见`)."""
    meta = doc.meta
    names = _terms(" | ".join(part for part in (doc.title, meta.speaker, meta.place, meta.date) if part))
    opening = ""
    if doc.sections:
        start = doc.header_span[1] if doc.header_span else 0
        opening = doc.text[start:min(doc.sections[0].start, start + OPENING_CHARS)]
    return names, names | _terms(opening)


_NAMING_CACHE: dict[str, tuple[set[str], set[str]]] = {}
_NAMING_CACHE_SIZE = 4096


def _naming(doc: Document) -> tuple[set[str], set[str]]:
    """`_read_naming`, kept per document id (a hash of the content) so a question does not re-read every title."""
    found = _NAMING_CACHE.get(doc.doc_id)
    if found is None:
        if len(_NAMING_CACHE) >= _NAMING_CACHE_SIZE:
            _NAMING_CACHE.clear()
        found = _NAMING_CACHE[doc.doc_id] = _read_naming(doc)
    return found


def children(doc: Document, section: Section | None) -> list[Section]:
    """The headings right under `section` (the top-level ones for None), in document order."""
    if section is None:
        top = min((s.level for s in doc.sections), default=1)
        return [s for s in doc.sections if s.level == top]
    return [s for s in doc.sections if s.level == section.level + 1 and s.path[:-1] == section.path
            and section.start <= s.start < section.end]


@dataclass(frozen=True, slots=True)
class Scope:
    """The document, and the section of it (None = the whole document), that a structure question is about.

    Attributes:
        coverage: share of the question's terms found in the document's naming text and the section heading.
        specificity: share of the scope's own terms (section heading, else naming text) found in the question.
    """

    doc: Document
    section: Section | None
    coverage: float
    specificity: float


def _scopes(terms: set[str], doc: Document) -> list[Scope]:
    """Every scope of `doc` for the question `terms`: the whole document, and each section that adds something."""
    names, naming = _naming(doc)
    named = terms & naming
    out = [Scope(doc, None, len(named) / len(terms), len(named) / (len(naming) or 1))]
    for section in doc.sections:
        heading = _terms(_ENUMERATION.sub("", normalize(section.title).strip()))
        held = terms & heading
        if not held or not heading:
            continue
        specificity = len(held) / len(heading)
        # A section counts when it names something the document's title and metadata do not, or when the question
        # restates it (a title that strings the parts together: `总结…；目标…；作风…` asked as `作风要过硬…`).
        if held <= names and specificity < RESTATED:
            continue
        # The opening words only name the whole document: a section is the heading plus the title and metadata.
        out.append(Scope(doc, section, len(terms & (heading | names)) / len(terms), specificity))
    return out


def _ordinal(query: str) -> int | None:
    """The position a question names (`第二部分` -> 2, `最后一部分` -> -1), or None."""
    text = normalize(query)
    m = _ORDINAL.search(text)
    if m is None:
        return -1 if _LAST.search(text) else None
    value = m.group(1)
    return int(value) if value.isdigit() else _CN_DIGITS.index(value) + 1


def choose_scope(query: str, hits: list[Hit], documents: Mapping[str, Document],
                 doc_ids: Sequence[str] | None = None) -> Scope | None:
    """The document and section a structure question is about (see the module docstring), or None.

    Candidates are the documents of the hits, best first, then any other document (of `doc_ids` when given) whose
    title or metadata holds some of the question's words (`县委扩大会议讲话…` when retrieval ranked others higher).
    """
    ranked: list[str] = []
    for hit in hits[:CANDIDATE_HITS]:
        if hit.passage.doc_id not in ranked:
            ranked.append(hit.passage.doc_id)
    terms = question_terms(query)
    allowed = documents.keys() if doc_ids is None else set(doc_ids)
    named = [(len(terms & _naming(documents[doc_id])[0]), doc_id) for doc_id in allowed
             if doc_id in documents and doc_id not in ranked]
    ranked += [doc_id for count, doc_id in sorted(named, key=lambda cd: -cd[0]) if count >= 2][:CANDIDATE_HITS]
    if not ranked:
        return None
    if not terms:  # `讲了哪几点`: the document retrieval ranked first
        best_scope = Scope(documents[ranked[0]], None, 1.0, 0.0)
    else:
        best: tuple[tuple, Scope] | None = None
        for rank, doc_id in enumerate(ranked):
            for scope in _scopes(terms, documents[doc_id]):
                # More of the question accounted for; then a section over the whole document; then a scope with
                # parts to list; then the tighter match; then the better-ranked document.
                parts = len(children(scope.doc, scope.section)) >= 2
                key = (round(scope.coverage, 6), scope.section is not None, parts, scope.specificity, -rank)
                if best is None or key > best[0]:
                    best = (key, scope)
        if best is None or best[1].coverage < MIN_SCOPE_COVERAGE:
            return None
        best_scope = best[1]
    position = _ordinal(query)
    if position is not None:  # `第二部分讲了哪几点`: the part at that place of the scope
        parts = children(best_scope.doc, best_scope.section)
        if not parts or position > len(parts):
            return None
        best_scope = replace(best_scope, section=parts[position - 1 if position > 0 else -1])
    return best_scope


def _opening_passage(index: SearchIndex, doc_id: str, offset: int) -> Passage | None:
    """The passage of `doc_id` that holds character `offset` of the document."""
    for row in index.doc_rows.get(doc_id, ()):
        passage = index.passages[row]
        if passage.char_start <= offset < passage.char_end:
            return passage
    return None


def _heading_terms(section: Section) -> set[str]:
    return _terms(_ENUMERATION.sub("", normalize(section.title).strip()))


def _parent(doc: Document, section: Section) -> Section | None:
    return next((s for s in doc.sections if s.path == section.path[:-1] and s.start <= section.start < s.end), None)


def theme_siblings(query: str, scope: Scope) -> list[Section]:
    """The headings beside the scope's section (its own included) that name all the question words it names.

    For a scope section without parts of its own: a question matched to one of several points that share a theme
    asks about all of them.
    """
    if scope.section is None:
        return []
    held = question_terms(query) & _heading_terms(scope.section)
    if not held:
        return []
    siblings = children(scope.doc, _parent(scope.doc, scope.section))
    return [s for s in siblings if held <= _heading_terms(s)]


def _describe(scope: Scope, headings: list[Section], themed: bool) -> str:
    lines = "\n".join(h.title for h in headings)
    if themed:  # some of a part's points, not all of its parts
        parent = _parent(scope.doc, scope.section) if scope.section is not None else None
        where = f"“{parent.title}”" if parent is not None else f"《{scope.doc.title}》"
        return f"{where}中讲到这方面的有{len(headings)}点：\n{lines}"
    where = f"《{scope.doc.title}》" if scope.section is None else f"“{scope.section.title}”"
    return f"{where}分为{len(headings)}个部分：\n{lines}"


def outline_answer(query: str, hits: list[Hit], index: SearchIndex,
                   doc_ids: Sequence[str] | None = None) -> Answer | None:
    """The outline answer to a structure question, or None (not one, no scope, or fewer than two headings).

    `doc_ids` restricts the documents considered, as it restricted the search that gave `hits`.

    The hits keep their number: the passages opening the listed sections come first (a passage holding several
    headings once), with a span on the heading, then the other hits in their order.
    """
    if not hits or not is_structure_question(query):
        return None
    scope = choose_scope(query, hits, index.documents, doc_ids)
    if scope is None:
        return None
    headings = children(scope.doc, scope.section)
    themed = len(headings) < 2
    if themed:
        headings = theme_siblings(query, scope)
    if len(headings) < 2:
        return None
    by_id = {hit.passage.passage_id: hit for hit in hits}
    top = hits[0].score
    opening: list[Hit] = []
    where: list[int | None] = []
    for heading in headings:
        passage = _opening_passage(index, scope.doc.doc_id, heading.heading_start)
        if passage is None:
            where.append(None)
            continue
        ids = [h.passage.passage_id for h in opening]
        if passage.passage_id not in ids:
            base = by_id.get(passage.passage_id) or Hit(passage=passage, score=top)
            start = heading.heading_start - passage.char_start
            end = min(heading.heading_end, passage.char_end) - passage.char_start
            # Ranked first, so scored as the first hit: scores stay in descending order.
            opening.append(replace(base, score=max(top, base.score),
                                   answer=AnswerSpan(start, end, passage.text[start:end])))
            ids.append(passage.passage_id)
        where.append(ids.index(passage.passage_id))
    chosen = {h.passage.passage_id for h in opening}
    ranked = (opening + [h for h in hits if h.passage.passage_id not in chosen])[:len(hits)]
    items = tuple(
        OutlineItem(h.title, h.level, h.path, h.heading_start, h.heading_end,
                    i if i is not None and i < len(ranked) else None)
        for h, i in zip(headings, where, strict=True))
    return Answer(query=query, text=_describe(scope, headings, themed), answerable=True, hits=tuple(ranked),
                  confidence=round(scope.coverage, 4), source=0, outline=items)
