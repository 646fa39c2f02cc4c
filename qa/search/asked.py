"""What a question asks for, and what a value that answers it looks like.

The asked attribute is read off the words next to the question word (`Focus`: `面积` in `面积有多大`).

A number question (`多少`, `几个`) is answered by a figure, with the unit the question names when it names one
(`多少亿元`); a when-question by a date, with a number in it when a day or a year is asked (`哪一天`); a where-question
by a place name; a who-came-first question by a sentence stating a first place. The partly anonymised documents
write a withheld figure as a lone `X` (`复工企业X户`). Written once here for the answer and the 不知道 judge.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from qa.text import normalize

# "多少/几个/多大…" ask for a number; "哪几个/哪两个" ask for a list and are excluded.
NUMERIC_QUESTION = re.compile(r"多少|(?<!哪)几(?=[个户人家项次天年万亿名座所条倍成])|多大|多高|多长|多重|占比|比重|百分之几|几成")
WHEN_QUESTION = re.compile(r"什么时候|哪天|哪一天|何时|哪年|哪一年|哪月|几月|几号|什么时间|哪个时间|日期")
# A real figure: digits (with decimals/percent/units), or Chinese numerals with a measure word (one numeral before
# a unit: `两个`, `千元`; not a bare `万`/`亿`, which is what is left of `X万亩` without its `X`).
FIGURE = re.compile(r"\d+(?:[.,]\d+)*\s*(?:%|‰)?"
                     r"|[零〇一二两三四五六七八九十百千万亿半]{2,}|[两三四五六七八九十百千](?=[个户人家项次天年月日倍成名座所条位岁只头台辆架艘部本张集届场层批元亩吨米])")
# An anonymised figure: a lone `X` (not part of a Latin word), as in `GDP增长X%` or `X个确诊病例`.
# Matched on raw and on normalized (lower-cased) text alike.
PLACEHOLDER = re.compile(r"(?<![A-Za-z])[XxＸｘ](?![A-Za-z])")
DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月\s*\d{1,2}\s*日|\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\s*月|\d{1,2}\s*日"
                   r"|\d+\s*(?:世纪|年代)|[零〇一二三四五六七八九十]+(?:年|月|日|世纪|年代)|元年"
                   r"|[春夏秋冬][季天]|时期|期间|时候|初期|中期|末期|晚期|早期"
                   r"|上周|本周|昨天|今天|今年|去年|上半年|下半年|年底|月底|年初|月初"
                   # a time of day (`12时26分`, `正午`) and the 24 solar terms (`夏至当日正午`)
                   r"|\d{1,2}\s*[时点](?:\s*\d{1,2}\s*分)?|凌晨|清晨|早晨|上午|中午|正午|下午|傍晚|晚上|深夜|午夜"
                   r"|立春|雨水|惊蛰|春分|清明|谷雨|立夏|小满|芒种|夏至|小暑|大暑|立秋|处暑|白露|秋分|寒露|霜降"
                   r"|立冬|小雪|大雪|冬至|小寒|大寒")
# A when-question asking for a day or a year is not answered by a relative time (`县委扩大会议是哪一天召开的`
# against `今天我们召开这次会议`): it needs a date with a number in it.
DAY_OR_YEAR_QUESTION = re.compile(r"哪天|哪一天|几号|哪日|几月几日|日期|哪年|哪一年")
NUMBERED_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月|\d{1,2}\s*[日号]|\d{4}-\d{1,2}-\d{1,2}|\d+\s*(?:世纪|年代)"
                            r"|[零〇一二三四五六七八九十]+(?:年|月|日|号|世纪|年代)|元年")
# A number question that names the unit of its answer (`多少亿元`, `几年`, `多少个百分点`, `百分之几`): a figure answers
# it only with that unit, so `收入完成了多少亿元` is not answered by `完成了18个`, and `禁令要持续几年` is by `十年禁渔令`.
# A number in Chinese numerals: starts with a digit word (`十年`, `两万元`), not with a bare unit (`亿元` of `X亿元`).
CN_NUMBER = "[零〇一二两三四五六七八九十半][零〇一二两三四五六七八九十百千万亿半]*"
UNIT_FIGURES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"(?:多少|(?<!哪)几)[万亿千百]*(?:美元|元)|多少钱"),
     re.compile(rf"\d+(?:[.,]\d+)*\s*[万亿千百]*\s*(?:美元|港元|欧元|日元|元)|{CN_NUMBER}[万亿千百]*(?:美元|元)")),
    (re.compile(r"(?:多少|(?<!哪)几)个?百分点"), re.compile(rf"\d+(?:\.\d+)?\s*个?百分点|{CN_NUMBER}个?百分点")),
    (re.compile(r"百分之(?:几|多少)|多少%"), re.compile(r"\d+(?:\.\d+)?\s*[%‰]|百分之[零〇一二两三四五六七八九十百点]+")),
    (re.compile(r"(?:多少|(?<!哪)几)周年"), re.compile(rf"\d+\s*周年|{CN_NUMBER}周年")),
    # A span of years (`十年`, `近2,400万年`), not a calendar year (`2020年`).
    (re.compile(r"(?:多少|(?<!哪)几)年(?![级代])"),
     re.compile(rf"(?<![\d,.])(?![12]\d{{3}}\s*年)\d+(?:[.,]\d+)*\s*[多余]?[万千百亿]*[多余]?年(?![级代])"
                rf"|{CN_NUMBER}[多余]?年(?![级代])")),
)
WHERE_QUESTION = re.compile(r"哪里|哪儿|什么地方|哪个地方|哪些地方|什么地区|哪个地区|哪些地区|何地|何处|哪国|哪个国家|哪个城市|哪个省")
# A place name: a word ending in an administrative or geographic suffix (`江苏省南京市`, `宜兰县头城镇`).
PLACE = re.compile(r"[\u4e00-\u9fff](?:省|市|县|区|镇|乡|村|州|国|岛|洲|路|街|山|河|湖|港|湾)")
UNIT = (r"(?:个百分点|百分点|平方公里|平方米|公里|公斤|公分|公尺|公顷|厘米|毫米|千米|米|千克|克|吨|亿元|万元|美元|日圆|元"
         r"|分钟|小时|秒|亩|户|人|个|家|项|次|天|年|岁|倍|名|座|所|条|位|台|辆|架|艘|本|张|集|届|场|层|度|发|枚|种)")
# A figure with its unit (`10.4亿元`, `8公斤`, `两个`, `92%`), and a run of dates (`2023年11月1日`).
VALUE = re.compile(rf"\d+(?:[.,]\d+)*\s*(?:%|‰|[万亿千百]*\s*{UNIT})?"
                    rf"|[零〇一二两三四五六七八九十百千万亿半]{{2,}}{UNIT}|[两三四五六七八九十]{UNIT}")
# Who or what came first (`排第一的是哪个街道`): a sentence saying only that rankings were announced does not answer.
# Only who/which questions: `…为什么会获得第1名` states the rank and asks something else.
RANK_QUESTION = re.compile(r"(?:排名?|位列|名列|位居|排在)第[一1]|第[一1]名|冠军|榜首|首位")
WHO_OR_WHICH = re.compile(r"谁|哪")
RANK_STATED = re.compile(r"(?:排名?|位列|名列|位居|居|列|获得?|荣获|夺得|取得)[^，,。；;]{0,10}?(?:第[一1](?!时间|责任|次)|首位|榜首|冠军|头名|前列)"
                          r"|第[一1]名|冠军|榜首|居首|首位|夺冠")


def question_type(query: str) -> str:
    """"numeric", "when", "where" or "other", from the question words."""
    if WHEN_QUESTION.search(query):
        return "when"
    if NUMERIC_QUESTION.search(query):
        return "numeric"
    if WHERE_QUESTION.search(query):
        return "where"
    return "other"


def asked_figure(query: str) -> re.Pattern[str] | None:
    """The pattern of a figure with the unit a number question names (`多少亿元` -> money), None when it names none."""
    text = normalize(query)
    return next((figure for asks, figure in UNIT_FIGURES if asks.search(text)), None)


_ASKED_UNIT = re.compile(rf"(?:多少|(?<!哪)几)(?P<unit>{UNIT})")


def figure_with_asked_unit(query: str) -> re.Pattern[str] | None:
    """A figure followed by whatever unit the question puts after its number word (`坚持了多少天` -> `五十多天`), not
    grouped in families as `asked_figure` does; None when the question names no unit."""
    m = _ASKED_UNIT.search(normalize(query))
    if m is None:
        return None
    unit = re.escape(m.group("unit"))
    return re.compile(rf"(?:\d+(?:[.,]\d+)*|{CN_NUMBER})\s*[多余]?\s*{unit}")


# Any question word: where the asked thing sits in the question.
_WH = re.compile(r"多少|多大|多高|多长|多重|多远|多深|多宽|多久|(?<!哪)几|什么时候|什么时间|什么|哪[一个些里儿年天月种位家所座条]?|谁|何时|何地|何处|为何|如何|怎么|怎样|为什么")
# Grammatical words between the asked attribute and the question word (`体重大约是多少`, `面积有多大`).
_FOCUS_TRIM = re.compile(r"(?:大约|大概|约为|一共|总共|分别|究竟|到底|是|有|为|约|达|共|的|了|在|于|到|都|会|能|要|将|已|还|又|被|由|从)+$")
# How sure the asker is, said before the verb (`产值大概降了多少`): not part of the asked attribute.
_HEDGE = re.compile(r"大约|大概|大致|差不多|究竟|到底|一共|总共")
_FOCUS_LEAD = re.compile(rf"^(?:[万亿千百]*{UNIT}|[万亿千百]|的|是|有|在|于)+")
_QUESTION_TAIL = re.compile(r"[？?。！!，,、\s]+")


@dataclass(frozen=True, slots=True)
class Focus:
    """What the question asks about, read off the words next to its question word.

    `left` holds the words before it (`面积` in `面积有多大`), `right` those after it (`病人` in `有多少病人…`),
    `adjective` the measured property of `多高/多长…` (`高`).
    """

    left: str = ""
    right: str = ""
    adjective: str = ""

    def match(self, clause: str, ignore: set[str] | frozenset[str] = frozenset()) -> int:
        """How firmly `clause` names the asked thing: the length of the longest part of the focus it contains.

        A part counts from two characters on (any two adjacent ones), or one for the adjective of `多高`; parts
        made only of bigrams in `ignore` (the title's words, which every sentence of the document is about) do
        not count. 0 = the clause does not name it.
        """
        return len(self.named(clause, ignore)[1]) or int(bool(self.adjective and self.adjective in clause))

    def named(self, clause: str, ignore: set[str] | frozenset[str] = frozenset()) -> tuple[int, str]:
        """The longest piece of the focus (two characters or more) that `clause` contains, with the focus part it
        comes from (0 = left, 1 = right); (0, "") when none does."""
        best = (0, "")
        for side, part in enumerate((self.left, self.right)):
            for size, pieces in _pieces(part):
                if size <= max(len(best[1]), 1):
                    break
                found = next((piece for piece, grams in pieces if piece in clause and not grams <= ignore), None)
                if found is not None:
                    best = (side, found)
                    break
        return best


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


@functools.lru_cache(maxsize=1024)
def _pieces(part: str) -> tuple[tuple[int, tuple[tuple[str, frozenset[str]], ...]], ...]:
    """The substrings of a focus part by size, longest first, each with its bigrams (read once per question)."""
    return tuple((size, tuple((part[i:i + size], frozenset(_bigrams(part[i:i + size])))
                              for i in range(len(part) - size + 1)))
                 for size in range(len(part), 0, -1))


def question_focus(query: str) -> Focus:
    """The asked attribute around the question word; empty when the question has no question word."""
    text = normalize(query)
    m = _WH.search(text)
    if m is None:
        return Focus()
    left = _FOCUS_TRIM.sub("", _QUESTION_TAIL.sub("", _HEDGE.sub("", text[:m.start()])))[-4:]
    right = _QUESTION_TAIL.split(_FOCUS_LEAD.sub("", text[m.end():]))[0][:4]
    adjective = m.group()[1] if m.group().startswith("多") and m.group() != "多少" else ""
    return Focus(left, right, adjective)


# A count question's counted thing (`几家骑士团` -> `骑士团`): answered by a list of such things as well as by a number.
COUNT_QUESTION = re.compile(r"(?:多少|(?<!哪)几)[个家项种所座条位名次类部本件](?P<noun>[^的，,？?。！!、]{2,6})")


def counted_noun(query: str) -> str:
    """The noun after a count question's measure word (`卡洛身兼几家骑士团的大团长职位` -> `骑士团`), "" if none."""
    m = COUNT_QUESTION.search(normalize(query))
    return m.group("noun") if m else ""
