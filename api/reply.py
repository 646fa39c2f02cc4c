"""The chat reply without an LLM: the answer sentence with its citation marker, then the numbered sources.

    同时，固定资产投资完成10.4亿元，增速高于全市平均水平，居全市第2位。 [1]

    [1] 《在全区统筹推进…的讲话》 一、提高政治站位，强化责任担当… （第10段）
    [2] ...

When the documents do not answer, the reply starts with the service's 不知道 sentence and still lists the closest
passages, so the user can check for themselves.
"""

from __future__ import annotations

import re

from qa.types import Answer, Hit

# Section titles are often whole sentences; a source line keeps the first characters of each.
_TITLE_CHARS = 16
# Rough token count: one per CJK character, Latin word or number, or punctuation mark (about what BPE tokenizers
# give for Chinese); clients only use it for display and budgeting.
_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+|[^\sA-Za-z0-9\u3400-\u9fff\uf900-\ufaff]")


def _short(title: str, limit: int = _TITLE_CHARS) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def source_line(number: int, hit: Hit) -> str:
    """`[n] 《title》 section > subsection （第N段）` for one cited passage (page too for paged formats)."""
    p = hit.passage
    where = f"第{p.page}页，第{p.paragraph_index + 1}段" if p.page else f"第{p.paragraph_index + 1}段"
    section = " > ".join(_short(t) for t in p.section_path)
    return f"[{number}] 《{p.doc_title}》 " + (f"{section} " if section else "") + f"（{where}）"


def sources_block(hits: tuple[Hit, ...] | list[Hit]) -> str:
    return "\n".join(source_line(i, hit) for i, hit in enumerate(hits, start=1))


def outline_reply(answer: Answer) -> str:
    """An outline answer: its first line, then one heading a line, each with the number of the passage opening it."""
    intro = answer.text.split("\n", 1)[0]
    lines = [f"{item.title} [{item.hit + 1}]" if item.hit is not None else item.title for item in answer.outline]
    return "\n".join([intro, *lines])


def extractive_reply(answer: Answer) -> str:
    """The reply text for an answer: the answer sentence + " [n]" (n: the source it was read from), a blank line, the
    numbered sources.

    An outline answer lists its headings one a line, each citing the passage that opens its section.
    """
    if not answer.hits:
        return answer.text
    if answer.outline:
        return f"{outline_reply(answer)}\n\n{sources_block(answer.hits)}"
    if answer.answerable:
        # The answer sentence may come from a lower hit than the first: cite the one it was read from.
        cited = 1 if answer.source is None else answer.source + 1
        return f"{answer.text} [{cited}]\n\n{sources_block(answer.hits)}"
    return f"{answer.text}\n\n最接近的内容：\n{sources_block(answer.hits)}"


def with_sources(text: str, answer: Answer) -> str:
    """An upstream LLM's reply followed by the numbered sources it was given."""
    return f"{text.strip()}\n\n{sources_block(answer.hits)}" if answer.hits else text.strip()


def stream_pieces(text: str, size: int = 24) -> list[str]:
    """Split a reply into pieces for streaming: line by line, long lines in pieces of about `size` characters."""
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > size:
            pieces.append(line[:size])
            line = line[size:]
        if line:
            pieces.append(line)
    return pieces


def rough_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))
