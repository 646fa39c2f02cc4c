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
# The role a title block holds: the speaker printed under the title.
_SPEAKER_ROLE = "讲话"
# When it was held: the question words of a when-question, and the verbs of an event taking place.
_WHEN = re.compile(r"什么时候|什么时间|哪天|哪一天|何时|哪年|哪一年|哪月|几月|几号|日期")
EVENTS = re.compile(r"召开|举行|举办|开幕|闭幕|开会")
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
    """The role or event a question asks about (`谁主持了会议` -> who/主持, `会议哪天召开` -> when), or None."""
    text = normalize(query)
    if _WHO.search(text):
        for role, pattern in ROLES.items():
            if pattern.search(text):
                return AskedRole("who", role)
        return None
    if _WHEN.search(text) and EVENTS.search(text):
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


def header_holds(asked: AskedRole, meta: DocumentMeta | None) -> bool:
    """Whether a title block with `meta` can answer: the speaker for who-spoke, a date for when-held."""
    if meta is None:
        return False
    if asked.kind == "who":
        return asked.role == _SPEAKER_ROLE and bool(meta.speaker)
    return bool(meta.date)
