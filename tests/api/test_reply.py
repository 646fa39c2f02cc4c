"""The chat reply's text: the answer sentence cites the passage it was read from."""

from __future__ import annotations

from api.reply import extractive_reply
from qa.types import Answer, Hit, Passage


def _hit(doc: str, text: str, score: float) -> Hit:
    passage = Passage(passage_id=f"{doc}:0-{len(text)}", doc_id=doc, doc_title=doc, section_path=(),
                      paragraph_index=0, char_start=0, char_end=len(text), text=text)
    return Hit(passage=passage, score=score)


HITS = (_hit("甲", "会议强调要抓好安全生产。", 0.9), _hit("乙", "固定资产投资完成10.4亿元。", 0.8))


def test_the_answer_cites_the_hit_it_was_read_from() -> None:
    answer = Answer(query="固定资产投资完成多少", text="固定资产投资完成10.4亿元。", answerable=True, hits=HITS, source=1)
    first_line = extractive_reply(answer).split("\n", 1)[0]
    assert first_line == "固定资产投资完成10.4亿元。 [2]"


def test_an_answer_from_the_first_hit_cites_1_and_unanswerable_cites_none() -> None:
    answer = Answer(query="会议强调什么", text="会议强调要抓好安全生产。", answerable=True, hits=HITS, source=0)
    assert extractive_reply(answer).startswith("会议强调要抓好安全生产。 [1]\n\n[1] 《甲》")
    unknown = Answer(query="利润多少", text="不知道：文档没有给出利润。", answerable=False, hits=HITS)
    assert "[1] 《甲》" in extractive_reply(unknown) and not extractive_reply(unknown).split("\n")[0].endswith("]")
