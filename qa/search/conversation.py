"""Follow-up questions without an LLM: rewrite an elliptical question from the earlier user turns.

A chat user asks "古塔区固定资产投资完成多少" and then "那社会消费品零售总额呢？". The second question alone names
neither the district nor what is asked about the new topic, and retrieval finds the figure of another document.
:func:`contextualize` turns it into "古塔区 社会消费品零售总额 完成多少": from the previous question it carries the
named places/persons, the topic when the follow-up has none ("增长了多少"), and the question tail when the follow-up
asks nothing itself ("完成多少"); the follow-up's own words replace the previous topic.

Measured on the sample corpus (tests/api/multiturn.jsonl, 8 conversations, hashing embedder), the best results come
from searching the follow-up inside the document that answered the previous question (:func:`previous_document`)
with the focused rewrite (topic + follow-up + tail, without the names, which pull the search to the title block).
Carrying the document scope words ("X区讲话中") into the query made every variant worse and is not done.

The rules only fire on questions that look elliptical (a connective such as 那/还有 at the start, 呢 at the end, a
very short question, or one that drops the place/person the previous question named), so a self-contained new
question is searched as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qa.index.tokenize import QUESTION_WORDS, content_terms, named_entities
from qa.index.vocabulary import Vocabulary
from qa.search.asked import question_type
from qa.search.structure import is_structure_question, names_part, structure_phrase
from qa.text import normalize
from qa.types import Hit

__all__ = ["FollowUp", "contextualize", "is_elliptical", "plan_followup", "previous_document"]

# Connectives that open a follow-up ("那…呢", "还有…", "另外…"); alternatives are tried in order, so 那么 before 那.
_LEADING = re.compile(r"^(?:那么|那|还有|另外|此外|至于|以及|再问一下|再问|再说说|再看看|然后|而|和|还|又)[，,\s]*")
# Trailing particles and punctuation of a follow-up: "…呢？", "…吗?".
_TRAILING = re.compile(r"(?:呢|吗|呀|啊|吧)?[？?。.!！\s]*$")
# Ends with 呢 (before punctuation): "安全生产呢？" asks the previous question about a new topic.
_ENDS_WITH_NE = re.compile(r"呢[？?。.!！\s]*$")
# A place with an anonymised or plain name: "X区", "某县", "魏都区" (jieba's tags miss "X区"). Same exclusions as
# the place reader in qa/ingest/document.py: not 县城/区域/区委…, and not 全区/我区/本县… (see _NOT_PLACE_START).
_PLACE = re.compile(r"(?<![A-Za-z])(?:[XxＸ某][区县市镇乡]|[\u4e00-\u9fff]{2}[区县](?![城域级委政间划内外]))")
_NOT_PLACE_START = set("全我本该各每城园社疫示合街辖地山市省")
# The words of a question that name its document: "X区讲话中", "县委扩大会议上的讲话", "魏都区全区领导干部会议".
_SCOPE = re.compile(r"^.{0,24}(?:讲话|会议|报告|发言|文件|通知|文章|致辞|文档)(?:中|里|里面|上|中的)?")
# A follow-up this short (letters, digits, ideographs) cannot stand alone: "增长多少", "谁主持的".
_SHORT = 6
# jieba POS flags of words that can end a topic phrase; the question tail starts after the last of them.
_TOPIC_FLAGS = ("n", "l", "j", "i", "vn", "an", "eng", "nz", "ns", "nt", "nr")
# Titles that follow a person's name and belong to it: "李朝锋同志呢" swaps the person of "张书杰同志…".
_TITLES = "同志|副书记|书记|副区长|区长|副县长|县长|副市长|市长|省长|主任|局长|部长|主席|先生|女士"
_HONORIFIC = re.compile(f"^(?:{_TITLES})")
_TITLED_NAME = re.compile(f"^[\u4e00-\u9fff]{{2,3}}(?:{_TITLES})$")
# Nouns that name the kind of answer asked for, not a topic ("具体有哪些措施", "有什么要求"): a follow-up made of them
# asks about the previous question's topic.
_REQUEST_NOUNS = frozenset({"措施", "要求", "办法", "举措", "内容", "情况", "意见", "工作", "做法", "安排", "任务",
                            "目标", "部门", "单位"})
_REQUEST_WORDS = re.compile("具体|详细|" + "|".join(sorted(_REQUEST_NOUNS, key=len, reverse=True)))
# Prepositions left at the edge of a topic once the names are cut out ("对二季度工作" -> "二季度工作").
_EDGE_WORDS = "，,、的对在关于和及与"


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What to search for the last user turn of a conversation.

    Attributes:
        query: the last user question, rewritten to stand alone when it is a follow-up (carries names, topic, tail).
        original: the last user question as asked.
        previous: the (itself contextualized) previous user question; None on the first turn.
        elliptical: True when the last question was read as a follow-up of `previous`.
        focused: the rewrite without the carried names, for a search restricted to the previous question's
            document (see :func:`previous_document`); equals `query` when the question is not a follow-up.
        anchor: the latest earlier question that chose its own document (asked on its own, or naming its own place,
            person or document), as contextualized; None on the first turn. Equals `previous` unless follow-ups
            were chained: a rewrite keeps the topic but may drop the words that named the document
            (`X区上半年总结讲话…农业…` -> `那工业呢` -> `x区 工业 提出了什么要求`), so that document is found from here.
    """

    query: str
    original: str
    previous: str | None = None
    elliptical: bool = False
    focused: str = ""
    anchor: str | None = None

    def __post_init__(self) -> None:
        if not self.focused:
            object.__setattr__(self, "focused", self.query)


def _content_len(text: str) -> int:
    return sum(1 for ch in text if ch.isalnum())


def _entities(text: str, vocabulary: Vocabulary | None) -> list[str]:
    """Places, persons and organisations named in `text`, in order of appearance."""
    known = vocabulary.words if vocabulary is not None else {}
    # jieba tags some topics as person names (春耕/nr): trust a 2-character name only from the learned words.
    found = [name for name in named_entities(text, vocabulary) if name in known or len(name) >= 3]
    for i, name in enumerate(found):
        title = _HONORIFIC.match(text[text.find(name) + len(name):])
        if title:
            found[i] = name + title.group(0)
    # A name learned together with its title (张书杰同志, tagged a noun by its head) is a person all the same.
    found += [t.word for t in content_terms(text, vocabulary) if _TITLED_NAME.match(t.word)
              and not any(t.word in other or other in t.word for other in found)]
    for match in _PLACE.finditer(text):
        name = match.group(0)
        if name[0] not in _NOT_PLACE_START and not any(name in other or other in name for other in found):
            found.append(name)
    return sorted(found, key=lambda n: (text.find(n), n))


def _asks(text: str) -> bool:
    """True if `text` holds a question word of its own (多少, 哪些, 谁, 几…)."""
    return "谁" in text or "几" in text or any(word in text for word in QUESTION_WORDS)


def _scope(text: str) -> str:
    """The words naming the document ("X区讲话中"), or "" ("谁主持了会议" asks, it names no document)."""
    match = _SCOPE.match(text)
    if not match or _asks(match.group(0)) or match.end() >= len(_TRAILING.sub("", text)):
        return ""
    return match.group(0)


def _core(question: str) -> str:
    """The question without its connective and trailing particle: "那社会消费品零售总额呢？" -> "社会消费品零售总额"."""
    core = _TRAILING.sub("", _LEADING.sub("", question.strip())).strip()
    return core or question.strip()


def _tail(question: str, vocabulary: Vocabulary | None) -> str:
    """What a question asks about its topic: the words after its last topic word.

    "古塔区固定资产投资完成多少" -> "完成多少"; "X区讲话中春耕有哪些要求" -> "有哪些要求".
    """
    question = normalize(question)
    end = 0
    for term in content_terms(question, vocabulary):
        if term.flag.startswith(_TOPIC_FLAGS):
            found = question.find(term.word, end)
            if found >= 0:
                end = found + len(term.word)
    return _TRAILING.sub("", question[end:]).strip() if end else ""


def _topic(question: str, vocabulary: Vocabulary | None) -> str:
    """What a question is about, without its document scope, names and tail.

    "X区讲话中春耕有哪些要求" -> "春耕"; "古塔区 规模以上增加值 完成多少" -> "规模以上增加值".
    """
    text = normalize(question)
    scope, tail = _scope(text), _tail(text, vocabulary)
    body = text[len(scope):len(text) - len(tail)] if tail and text.endswith(tail) else text[len(scope):]
    for entity in _entities(text, vocabulary):
        body = body.replace(entity, " ")
    words = (_core(part).strip(_EDGE_WORDS) for part in body.split())
    return " ".join(word for word in words if word)


def is_elliptical(question: str, previous: str | None, vocabulary: Vocabulary | None = None) -> bool:
    """Whether `question` reads as a follow-up of `previous` rather than a question of its own.

    True when it opens with a connective (那/那么/还有/另外…), ends with 呢, is at most 6 characters long, or names
    no place/person and no document while the previous question named a place or person.
    """
    if not previous:
        return False
    text = normalize(question)
    if _LEADING.match(text) or _ENDS_WITH_NE.search(text):
        return True
    if _content_len(text) <= _SHORT:
        return True
    # "第三部分具体讲了什么": a part by its position, of no document named, is a part of the previous one's.
    named = _entities(text, vocabulary)
    if names_part(text) and not named and not _scope(text):
        return True
    return bool(_entities(previous, vocabulary)) and not named and not _scope(text)


def _rewrite(question: str, previous: str, vocabulary: Vocabulary | None) -> tuple[str, str]:
    """The (standalone, focused) rewrites of an elliptical `question` (see the module docstring)."""
    core = normalize(_core(question))
    previous = normalize(previous)
    own_names = _entities(core, vocabulary)
    own_topic = [t for t in content_terms(core, vocabulary) if t.flag.startswith(_TOPIC_FLAGS)
                 and not any(t.word in name for name in own_names) and t.word not in _REQUEST_NOUNS]
    names = [] if own_names or _scope(core) else _entities(previous, vocabulary)
    topic = "" if own_topic else _topic(previous, vocabulary)
    tail = "" if _asks(core) else _tail(previous, vocabulary)
    if not tail and not _asks(core) and is_structure_question(previous) and not is_structure_question(core):
        # "第二部分呢？" after "…分为几个部分": the same question about that part.
        tail = structure_phrase(previous)
    # "魏都区呢" only swaps the name: it is the previous question asked about that place.
    body = [core, topic, tail] if own_names and not own_topic else [topic, core, tail]
    # Inside the previous document a carried tail only helps when it asks for a value ("完成多少"); a request
    # ("提出了什么要求") matches the speech's opening words better than the new topic.
    focused = [part for part in body if part != tail or question_type(tail) != "other" or is_structure_question(tail)]
    if not own_topic and not own_names:
        # "具体有哪些措施": the request words match a speech's opening ("措施具体") better than the carried topic.
        focused = [_REQUEST_WORDS.sub("", part) if part == core else part for part in focused]

    def join(parts: list[str]) -> str:
        return " ".join(dict.fromkeys(p for p in parts if p))

    return join([*names, *body]), join(focused)


def plan_followup(messages: Sequence[tuple[str, str]], vocabulary: Vocabulary | None = None) -> FollowUp:
    """Read a conversation and decide what to search for its last user question.

    Args:
        messages: ``(role, text)`` pairs in order; roles other than "user" are ignored (the assistant's replies
            quote passages and would only add noise).
        vocabulary: the words learned from the searched index's documents (its names, places, projects).

    Returns:
        The `FollowUp` of the last user message. Earlier user turns are contextualized in order, so a third turn
        builds on the rewritten second one.

    Raises:
        ValueError: there is no user message with text.
    """
    questions = [text.strip() for role, text in messages if role == "user" and text and text.strip()]
    if not questions:
        raise ValueError("the conversation has no user message with text")
    previous: str | None = None
    anchor: str | None = None
    plan = FollowUp(questions[0], questions[0])
    for question in questions:
        if previous is not None and is_elliptical(question, previous, vocabulary):
            query, focused = _rewrite(question, previous, vocabulary)
            plan = FollowUp(query, question, previous, True, focused, anchor)
        else:
            plan = FollowUp(question, question, previous, False, anchor=anchor)
        if not plan.elliptical or _chooses_document(question, vocabulary):
            anchor = plan.query
        previous = plan.query
    return plan


def contextualize(messages: Sequence[tuple[str, str]]) -> str:
    """The last user question, rewritten to stand alone when it follows up on earlier user turns.

    Args:
        messages: ``(role, text)`` pairs in order (OpenAI roles: system/user/assistant).

    Returns:
        The question to search, e.g. ``[("user", "古塔区固定资产投资完成多少"), ("assistant", "…"),
        ("user", "那社会消费品零售总额呢？")]`` -> ``"古塔区 社会消费品零售总额 完成多少"``.

    Raises:
        ValueError: there is no user message with text.
    """
    return plan_followup(messages).query


def previous_document(plan: FollowUp, search: Callable[[str], list[Hit]],
                      vocabulary: Vocabulary | None = None) -> str | None:
    """The document that answered the previous question, to keep an elliptical follow-up inside it.

    Chat requests carry no state, so the previous question is searched again. A follow-up that names its own place
    or person, or its own document, may be about another document and is not kept inside one.

    Args:
        plan: from :func:`plan_followup`.
        search: runs a question and returns hits, best first (e.g. ``lambda q: service.search(q, top_k=1)``).
        vocabulary: as for :func:`plan_followup`.

    Returns:
        The doc_id of the top hit of the question that chose the document (`plan.anchor`: the previous question,
        or the one before a chain of follow-ups); None when the follow-up should search all documents.
    """
    if not plan.elliptical or plan.previous is None or _chooses_document(plan.original, vocabulary):
        return None
    hits = search(plan.anchor or plan.previous)
    return hits[0].passage.doc_id if hits else None


def _chooses_document(question: str, vocabulary: Vocabulary | None) -> bool:
    """Whether a follow-up names its own place or person, or its own document (it may be about another one)."""
    core = normalize(_core(question))
    return bool(_entities(core, vocabulary) or _scope(core))
