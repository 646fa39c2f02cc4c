"""Who did what at a meeting, and when it was held: the body sentence that states it, over the title block.

A news item or speech names its people and dates twice: in the title block (the speaker under the title, a
publication time) and in the body (`区委副书记魏少峰主持会议`, `4月29日,全区领导干部会议召开`). The title block
shares the title's words with every question about the document and so ranks first, but it only holds a speaker and
a date: it cannot say who chaired or who reported, and its date may be the publication time rather than the day
the meeting was held. So for these questions:

- a body sentence that states the asked role (`主持`, `通报`, `讲话`…) or, for when-held, a clause with the event verb
  (`召开`, `举行`…) and a concrete date, is the answer, and its passage ranks above the title block;
- the title block answers only what it holds (the speaker for who-spoke, its date for when-held) and only when no
  body sentence states it.

The vocabulary of these question kinds is written once, below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.text import normalize
from qa.types import DocumentMeta

# Who did it: the question words of a who-question.
_WHO = re.compile(r"谁|哪位|哪几位|哪些人|什么人|哪个领导|哪些领导|哪个同志|哪位同志")
# Roles at a meeting, each as asked and as a sentence states it. `讲话` not in `讲话精神`/`重要讲话` (what was studied,
# not who spoke).
ROLES: dict[str, re.Pattern[str]] = {
    "主持": re.compile(r"主持"),
    "讲话": re.compile(r"(?<!重要)讲[了过]?话(?![精稿])|发言|致辞"),
    "通报": re.compile(r"通报"),
    "报告": re.compile(r"作了?报告|汇报"),
    "传达": re.compile(r"传达"),
    "宣读": re.compile(r"宣读"),
    "部署": re.compile(r"部署"),
}
# Clause limits around the who-word, and what may follow a role said before it: `主持会议的是`, `讲话的领导是`.
_CLAUSE_MARKS = "，,。；;？?！!：:"
_CLAUSE_END = re.compile(r"[，,。；;？?！!：:]")
_DOER = re.compile(r"[^的，,。；;？?！!]{0,6}的(?:人|领导|同志|干部|人员|负责人)?(?:是|为)?")
# The role a title block holds: the speaker printed under the title.
_SPEAKER_ROLE = "讲话"
# When it was held: the question words of a when-question, and the verbs of an event taking place.
_WHEN = re.compile(r"什么时候|什么时间|哪天|哪一天|何时|哪年|哪一年|哪月|几月|几号|日期")
EVENTS = re.compile(r"召开|举行|举办|开幕|闭幕|开会")
# As a question says it: also a meeting that was `开` (`会议是几号开的`).
_EVENT_ASKED = re.compile(EVENTS.pattern + r"|会议?[^，,。；;？?！!]{0,8}开(?:的|了)")
# A concrete date (not `今天`, `近日`): a year, a month with or without its day, or an ISO date.
_CONCRETE_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|\d{4}-\d{1,2}-\d{1,2}"
                            r"|[一二三四五六七八九十]{1,3}月(?:[一二三四五六七八九十]{1,3}日)?")
_CLAUSE = re.compile(r"[^，,；;。！？!?]+")
# A clause this short before the event's clause is its time (`4月29日`, `2020年4月29日上午`).
DATE_CLAUSE_CHARS = 12


@dataclass(frozen=True, slots=True)
class AskedRole:
    """What a who/when question asks about a meeting.

    Attributes:
        kind: "who" (who had `role`) or "when" (when the event was held).
        role: the key of ROLES for who-questions; "" for when-questions.
    """

    kind: str
    role: str = ""


def asked_role(query: str) -> AskedRole | None:
    """The role or event a question asks about (`谁主持了会议` -> who/主持, `会议哪天召开` -> when), or None.

    The role is the one said of the who-word: after it in its clause (`会议由谁主持`, `谁在会上讲了话`) or before it as
    what the person did (`主持会议的是谁`). A role word elsewhere names the document (`古塔区讲话要求由谁来抓`: who is to
    take charge, not who spoke).
    """
    text = normalize(query)
    who = _WHO.search(text)
    if who:
        clause_start = max(text.rfind(mark, 0, who.start()) for mark in _CLAUSE_MARKS) + 1
        end = _CLAUSE_END.search(text, who.end())
        after = text[who.end():end.start() if end else len(text)]
        before = text[clause_start:who.start()]
        for role, pattern in ROLES.items():
            if pattern.search(after) or any(_DOER.fullmatch(before, m.end()) for m in pattern.finditer(before)):
                return AskedRole("who", role)
        return None
    if _WHEN.search(text) and _EVENT_ASKED.search(text):
        return AskedRole("when")
    return None


def states_role(sentence: str, asked: AskedRole) -> bool:
    """Whether a body sentence states the asked role (who) or gives the event with a concrete date (when)."""
    text = normalize(sentence)
    if asked.kind == "who":
        return bool(ROLES[asked.role].search(text))
    clauses = _CLAUSE.findall(text)
    # The date sits in the event's clause (`于4月29日召开`) or is a clause of its own just before it
    # (`4月29日,全区领导干部会议召开`); a date further on belongs to something else (`召开…会，贯彻7月20日…精神`).
    return any(EVENTS.search(c) and (_CONCRETE_DATE.search(c) or i and len(clauses[i - 1]) <= DATE_CLAUSE_CHARS
                                     and _CONCRETE_DATE.search(clauses[i - 1]))
               for i, c in enumerate(clauses))


# What a title block prints, and the words that ask for each: the document itself (title, source), its speaker or
# author, its date, its place. A question asking none of these, or only what a block lacks, is not answered by it.
_ASKS_METADATA: dict[str, re.Pattern[str]] = {
    "document": re.compile(r"标题|题目|来源"),
    "speaker": re.compile(r"作者|讲话人|发言人|署名|谁(?:写|讲|说|撰|著|发表)"
                          r"|(?:写|讲|说|撰|著|发表)[^的，,。；;？?！!]{0,6}的(?:人|领导)?是(?:谁|哪位)"
                          r"|(?:谁|哪位)的(?:讲话|发言|文章|报告)|(?:讲话|发言|文章|报告)是(?:谁|哪位)的"),
    "date": re.compile(r"什么时候|什么时间|哪天|哪一天|何时|哪年|日期|时间|发布"),
    "place": re.compile(r"地点|在哪"),
}


# When the document was published: only its title block says (a body gives the dates of what it reports). Not
# `出版` (an encyclopedia article tells when its book came out) nor `来源` (a name's origin).
_ASKS_PUBLICATION = re.compile(r"发布|刊发|刊登")


def asks_publication(query: str) -> bool:
    """Whether a question asks when a document was published (`这条新闻是什么时候发布的`)."""
    return _ASKS_PUBLICATION.search(normalize(query)) is not None


def asked_metadata(query: str) -> frozenset[str]:
    """Which of a title block's contents a question asks for: "document", "speaker", "date", "place".

    `这篇讲话的作者是谁` -> speaker, `渡川之战发生于什么时候` -> date; `四泉圣嘉禄堂是由谁设计的` -> none (a title block
    names a speaker or author, not who designed, chaired or is responsible).
    """
    text = normalize(query)
    return frozenset(field for field, pattern in _ASKS_METADATA.items() if pattern.search(text))


def header_answers(fields: frozenset[str], meta: DocumentMeta | None) -> bool:
    """Whether a title block with `meta` holds one of the asked `fields` (it always holds its document's title)."""
    if "document" in fields:
        return True
    if meta is None:
        return False
    return bool("speaker" in fields and meta.speaker or "date" in fields and meta.date
                or "place" in fields and meta.place)


def header_holds(asked: AskedRole, meta: DocumentMeta | None) -> bool:
    """Whether a title block with `meta` can answer: the speaker for who-spoke, a date for when-held."""
    if meta is None:
        return False
    if asked.kind == "who":
        return asked.role == _SPEAKER_ROLE and bool(meta.speaker)
    return bool(meta.date)
