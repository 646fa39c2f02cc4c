"""Extractive answers: question types, the answering sentence, and the 不知道 judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.index.segments import passage_index_text
from qa.search.answer import (
    Evidence,
    TermWeights,
    best_sentence,
    build_answer,
    judge,
)
from qa.search.asked import Focus, question_focus, question_type
from qa.service import QAService
from qa.types import Hit, Passage

# Copied from qa/resources/corpus/000_41c0baea53232ea5.txt (paragraph under 一、提高政治站位…): several sentences, three with
# figures; only one is about 固定资产投资.
GUTA_PARAGRAPH = (
    "挑战显著增多的复杂局面，全区上下深入贯彻习近平新时代中国特色社会主义思想，在党中央、省市州的坚强领导下，经过大家的"
    "共同努力，各项工作平稳有序推进。总体来看，古塔区的经济社会发展运行在合理区间，各项经济指标截至6月末较一季度有了明显"
    "好转，比如，规模以上增加值完成38.1亿元，增长21.6%，增速居全市第1位；社会消费品零售总额增速逐月回升，4-6月份降幅比"
    "一季度收窄7.4个百分点；同时，固定资产投资完成10.4亿元，增速高于全市平均水平，居全市第2位。但是，在肯定成绩的同时，"
    "我们也要清醒的认识到距离完成市委年初分配的指标任务还有很大的差距。我们的一般公共预算收入在全市位次还比较低，引进国内"
    "实际到位资金还比较少，社会消费品零售总额绝对量虽然排名全市第2位，但增长率还比较缓慢。"
)

# Background passages for term weights: they make the common words (全区, 企业, 工作…) cheap and the specific ones dear.
BACKGROUND = [
    "全区上下要统一思想，狠抓落实，确保各项工作任务按期完成。",
    "各街道要加强企业服务，帮助企业解决用工、融资等实际困难。",
    "要坚持问题导向，抓好疫情防控和经济社会发展各项工作。",
    "全区规模以上工业企业实现产值增长，社会消费品零售总额逐月回升。",
    "加强项目建设，落实领导包保责任制，推动重点项目早开工、早投产。",
]


def make_passage(text: str, n: int = 0, doc_id: str = "testdoc") -> Passage:
    return Passage(passage_id=f"{doc_id}:{n}-{n + len(text)}", doc_id=doc_id, doc_title="测试文档",
                   section_path=(), paragraph_index=n, char_start=n, char_end=n + len(text), text=text)


def evidence_for(*texts: str) -> Evidence:
    return Evidence(TermWeights([*BACKGROUND, *texts]), lambda p: p.text)


def hits_for(*texts: str) -> list[Hit]:
    return [Hit(make_passage(t, i * 1000), score=1.0 - i * 0.1) for i, t in enumerate(texts)]


# --- question_type -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "expected"), [
    ("古塔区固定资产投资完成多少", "numeric"),
    ("大连现在有多少确诊病例", "numeric"),
    ("全区有几个重点项目", "numeric"),
    ("复工率占比是多少", "numeric"),
    ("古塔区有哪几个重点项目", "other"),  # a list question, not a number
    ("哪几个部门要抓好政策落实", "other"),
    ("古塔化工园规划环评专家评审是哪天通过的", "when"),
    ("会议什么时候召开", "when"),
    ("森林防火期从几月开始", "when"),
    ("谁在会上讲话", "other"),
    ("讲话的第二部分讲了什么", "other"),
])
def test_question_type(question, expected):
    assert question_type(question) == expected


# --- best_sentence ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights_from", ["corpus_file", "passage_only"])
def test_best_sentence_picks_the_sentence_with_the_asked_figure(sample_corpus_dir: Path, weights_from):
    if weights_from == "corpus_file":
        text = (sample_corpus_dir / "000_41c0baea53232ea5.txt").read_bytes().decode("utf-8")
        assert GUTA_PARAGRAPH in text, "the test paragraph must be an exact copy from the sample corpus"
        weights = TermWeights(line for line in text.splitlines() if line.strip())
    else:
        weights = TermWeights([GUTA_PARAGRAPH])
    span, coverage = best_sentence("古塔区固定资产投资完成多少", GUTA_PARAGRAPH, weights)
    assert GUTA_PARAGRAPH[span.start:span.end] == span.text
    assert "10.4亿元" in span.text
    assert "38.1亿元" not in span.text and "7.4个百分点" not in span.text
    assert span.text.startswith("同时") and span.text.endswith("。")
    assert 0.0 < coverage <= 1.0


def test_best_sentence_for_a_when_question_prefers_the_sentence_with_a_date():
    text = ("今冬明春全区森林防火形势严峻，防火期工作要抓早抓细。全区森林防火期为2023年11月1日至2024年5月31日。"
            "防火期内严禁在林区野外用火。")
    span, _ = best_sentence("森林防火期从哪天开始", text, evidence_for(text).weights)
    assert "2023年11月1日" in span.text
    assert text[span.start:span.end] == span.text


@pytest.mark.parametrize(("question", "text", "expected"), [
    # Both sentences cover the question equally; only the second gives the asked figure/date.
    ("全区固定资产投资完成多少", "全区固定资产投资完成情况良好。全区固定资产投资完成10.4亿元。", "10.4亿元"),
    ("森林防火期从哪天开始", "森林防火期安排已经确定。森林防火期为11月1日起。", "11月1日"),
    # An `X` placeholder is not a figure.
    ("全区复工企业有多少户", "全区复工企业X户。全区复工企业126户。", "126户"),
], ids=["numeric", "when", "placeholder-is-no-figure"])
def test_best_sentence_prefers_a_real_figure_or_date_between_equal_sentences(question, text, expected):
    span, _ = best_sentence(question, text, evidence_for(text).weights)
    assert expected in span.text
    assert text[span.start:span.end] == span.text


def test_best_sentence_skips_markdown_emphasis_at_the_edges():
    text = "**二、加强物资储备。**区应急管理局储备风力灭火机60台。"
    span, _ = best_sentence("物资储备", text, evidence_for(text).weights)
    assert not span.text.startswith("**") and not span.text.endswith("**")
    assert text[span.start:span.end] == span.text


def test_best_sentence_of_a_single_sentence_passage_is_the_whole_sentence():
    text = "区应急管理局储备风力灭火机60台"
    span, _ = best_sentence("风力灭火机有多少台", text, evidence_for(text).weights)
    assert (span.start, span.end, span.text) == (0, len(text), text)


# --- judge ---------------------------------------------------------------------------------------------------------

PLACEHOLDER = "截至目前，全区复工企业X户，企业复工总人数X人；其中，规上企业X户，复工率达X%。"
NO_NUMBER = "全区复工企业要严格落实疫情防控措施，做好员工健康监测和厂区消杀。"
REAL_NUMBER = "截至目前，全区复工企业126户，企业复工总人数3400人；其中，规上企业38户，复工率达92%。"


def test_judge_flags_a_number_given_only_as_an_x_placeholder():
    verdict = judge("全区复工企业有多少户", hits_for(PLACEHOLDER), evidence_for(PLACEHOLDER))
    assert verdict.answerable is False
    assert verdict.coverage >= 0.2  # flagged for the missing figure, not for being off-topic


@pytest.mark.parametrize("text", [PLACEHOLDER, PLACEHOLDER.replace("X", "Ｘ")], ids=["ascii-X", "fullwidth-X"])
def test_placeholder_reason_says_the_figure_is_given_as_x(text):
    verdict = judge("全区复工企业有多少户", hits_for(text), evidence_for(text))
    assert verdict.answerable is False
    assert "X" in verdict.reason


def test_judge_flags_the_placeholder_clause_even_next_to_an_unrelated_real_figure():
    # Copied shape from the sample corpus: the figure in the sentence (45%) is about something else.
    text = "1-2月份规上工业产值平均降幅在45%左右；截至目前，全区复工企业X户，复工率达X%。"
    verdict = judge("全区复工企业有多少户，复工率多少", hits_for(text), evidence_for(text))
    assert verdict.answerable is False


def test_judge_flags_a_passage_that_mentions_the_term_without_a_number():
    verdict = judge("全区复工企业有多少户", hits_for(NO_NUMBER), evidence_for(NO_NUMBER))
    assert verdict.answerable is False
    assert "数字" in verdict.reason


def test_judge_accepts_a_real_number_next_to_the_asked_term():
    verdict = judge("全区复工企业有多少户", hits_for(REAL_NUMBER), evidence_for(REAL_NUMBER))
    assert verdict.answerable is True
    assert verdict.reason == ""


def test_judge_finds_the_real_number_in_a_lower_hit():
    verdict = judge("全区复工企业有多少户", hits_for(NO_NUMBER, PLACEHOLDER, REAL_NUMBER),
                    evidence_for(NO_NUMBER, PLACEHOLDER, REAL_NUMBER))
    assert verdict.answerable is True


def test_judge_when_question_needs_a_date():
    dated = "7月19日古塔化工园规划环评专家评审原则通过。"
    undated = "古塔化工园规划环评专家评审工作正在有序推进。"
    question = "古塔化工园规划环评专家评审是哪天通过的"
    assert judge(question, hits_for(dated), evidence_for(dated, undated)).answerable is True
    verdict = judge(question, hits_for(undated), evidence_for(dated, undated))
    assert verdict.answerable is False and "时间" in verdict.reason


def test_judge_with_no_hits_is_unanswerable():
    assert judge("全区复工企业有多少户", [], evidence_for()).answerable is False


def test_judge_uses_the_similarity_floor_for_weakly_covered_questions():
    text = "全区上下要统一思想，狠抓落实，确保全年目标任务完成。"
    question = "全区招商引资的经验有哪些"  # shares only 全区 with the passage
    low = Evidence(evidence_for(text).weights, lambda p: p.text, similarity_floor=0.9, top_similarity=lambda: 0.5)
    high = Evidence(evidence_for(text).weights, lambda p: p.text, similarity_floor=0.9, top_similarity=lambda: 0.95)
    assert judge(question, hits_for(text), low).answerable is False
    assert judge(question, hits_for(text), high).answerable is True


# --- build_answer over the tiny index -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_evidence(tiny_index) -> Evidence:
    texts = {p.passage_id: passage_index_text(p, tiny_index.documents[p.doc_id]) for p in tiny_index.passages}
    return Evidence(TermWeights(texts.values()), lambda p: texts[p.passage_id])


def test_off_topic_question_is_not_answerable(retriever, tiny_evidence):
    question = "如何做红烧肉"
    hits = retriever.search(question, top_k=5)
    assert hits, "retrieval always returns something; the judge must say the documents do not answer"
    answer = build_answer(question, hits, tiny_evidence)
    assert answer.answerable is False
    assert answer.text.startswith("不知道")
    assert len(answer.hits) == len(hits)  # the hits are still returned


def test_build_answer_marks_the_answering_sentence_in_every_hit(retriever, tiny_evidence):
    question = "城关区上半年地区生产总值完成多少"
    answer = build_answer(question, retriever.search(question, top_k=5), tiny_evidence)
    assert answer.answerable is True
    assert "56.7亿元" in answer.text
    assert answer.query == question
    assert 0.0 < answer.confidence <= 1.0
    for hit in answer.hits:
        assert hit.answer is not None
        assert hit.passage.text[hit.answer.start:hit.answer.end] == hit.answer.text


def test_build_answer_placeholder_question_in_the_tiny_corpus(retriever, tiny_evidence):
    question = "全区复工企业有多少户"
    answer = build_answer(question, retriever.search(question, top_k=5), tiny_evidence)
    assert answer.answerable is False
    assert answer.text.startswith("不知道")


def test_build_answer_with_no_hits():
    answer = build_answer("森林防火期从哪天开始", [], evidence_for())
    assert answer.answerable is False and answer.hits == ()
    assert answer.text.startswith("不知道")


def test_service_ask_answers_and_refuses(tmp_path: Path, tiny_dir: Path, embedder):
    service = QAService(tmp_path / "index", embedder)
    service.index_paths([tiny_dir])
    answer = service.ask("全区森林防火期从哪天开始")
    assert answer.answerable is True
    assert "2023年11月1日" in answer.text
    assert service.ask("如何做红烧肉").answerable is False
    assert service.ask("如何做红烧肉", mode="bm25").answerable is False


# --- the answer sentence across the top hits ----------------------------------------------------------------------


def titled_hits(*pairs: tuple[str, str]) -> list[Hit]:
    """Hits from (doc_title, text) pairs, best first."""
    hits = []
    for i, (title, text) in enumerate(pairs):
        passage = Passage(passage_id=f"doc{i}:0-{len(text)}", doc_id=f"doc{i}", doc_title=title, section_path=(),
                          paragraph_index=0, char_start=0, char_end=len(text), text=text)
        hits.append(Hit(passage, score=1.0 - i * 0.1))
    return hits


def test_answer_sentence_comes_from_a_lower_hit_when_it_covers_the_question_and_gives_the_figure():
    first = "东城区固定资产投资工作推进有序，项目建设总体平稳。"
    second = "今年以来，东城区固定资产投资完成12.6亿元，同比增长8.3%。"
    hits = hits_for(first, second)
    answer = build_answer("东城区固定资产投资完成多少", hits, evidence_for(first, second))
    assert answer.answerable is True
    assert "12.6亿元" in answer.text
    assert answer.source == 1
    assert [h.passage.passage_id for h in answer.hits] == [h.passage.passage_id for h in hits]  # order kept


def test_a_larger_rank_prior_keeps_the_answer_with_the_higher_hit():
    # Hits re-ranked by their best sentences: the order already says which sentence answers best.
    first = "东城区固定资产投资工作推进有序，项目建设总体平稳。"
    second = "今年以来，东城区固定资产投资完成12.6亿元，同比增长8.3%。"
    answer = build_answer("东城区固定资产投资完成多少", hits_for(first, second), evidence_for(first, second),
                          rank_prior=1.0)
    assert answer.source == 0 and "12.6亿元" not in answer.text


def test_answer_stays_with_the_first_hit_when_a_lower_one_is_no_better():
    first = "东城区固定资产投资完成12.6亿元。"
    second = "西城区固定资产投资完成9.1亿元。"
    answer = build_answer("东城区固定资产投资完成多少", hits_for(first, second), evidence_for(first, second))
    assert "12.6亿元" in answer.text and answer.source == 0


def test_title_words_count_for_every_sentence_so_the_asked_attribute_decides():
    # The subject is named in the title and the first sentence only; the answer says `其叶…`.
    text = "青皮木兰是木兰科的一种乔木，分布于山地林中。其叶呈椭圆形，长8至12厘米。花期为4至5月。"
    hits = titled_hits(("青皮木兰", text))
    answer = build_answer("青皮木兰的叶是什么形状", hits, evidence_for(text))
    assert answer.text.startswith("其叶呈椭圆形")


def test_a_heading_is_answered_with_the_sentences_under_it():
    text = ("二是落实“两个责任”。进一步强化镇街和社区的属地责任，强化企业的主体责任，严防疫情输入。"
            "三是做好物资保障。")
    answer = build_answer("会议要求落实的“两个责任”是什么", hits_for(text), evidence_for(text))
    assert answer.text.startswith("二是落实")
    assert "属地责任" in answer.text
    assert "物资保障" not in answer.text  # stops at the next item of the same list
    span = answer.hits[0].answer
    assert span is not None and text[span.start:span.end] == span.text


def test_a_sentence_end_inside_brackets_does_not_split_the_sentence():
    text = "白头翁（学名：Pulsatilla；又名老公花）是毛茛科植物，高约30厘米。"
    span, _ = best_sentence("白头翁有多高", text, evidence_for(text).weights)
    assert span.text == text


# --- the exact value -------------------------------------------------------------------------------------------------


def test_exact_value_of_a_number_question_with_offsets():
    text = "规模以上增加值完成38.1亿元，增长21.6%；同时，固定资产投资完成10.4亿元，增速居全市第2位。"
    answer = build_answer("固定资产投资完成多少", hits_for(text), evidence_for(text))
    assert answer.exact is not None
    assert answer.exact.text == "10.4亿元"
    hit = answer.hits[answer.exact.hit]
    assert hit.passage.text[answer.exact.start:answer.exact.end] == "10.4亿元"


def test_exact_value_of_a_when_question_is_the_whole_date():
    text = "今冬森林防火形势严峻。全区森林防火期为2023年11月1日至2024年5月31日。"
    answer = build_answer("森林防火期从哪天开始", hits_for(text), evidence_for(text))
    assert answer.exact is not None and answer.exact.text == "2023年11月1日"


def test_exact_value_skips_a_figure_the_question_states_and_is_none_for_other_questions():
    text = "2019年，东城区常住人口为52万人。"
    answer = build_answer("2019年东城区常住人口有多少", hits_for(text), evidence_for(text))
    assert answer.exact is not None and answer.exact.text == "52万人"
    assert build_answer("东城区的常住人口情况怎样", hits_for(text), evidence_for(text)).exact is None


# --- 不知道 that reads clauses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "expected"), [
    ("大理石有多高", Focus(left="大理石", adjective="高")),
    ("尤金袋鼠的体重大约是多少", Focus(left="鼠的体重")),
    ("有多少病人在首个小时内死亡", Focus(right="病人在首")),
    ("东城区利润下降了多少", Focus(left="利润下降")),
    # how sure the asker is is not part of the attribute
    ("今年头两个月工业产值大概降了多少", Focus(left="业产值降")),
])
def test_question_focus(question, expected):
    assert question_focus(question) == expected


def test_x_in_the_clause_of_the_asked_quantity_is_unanswerable_despite_other_figures():
    text = "上半年全区工业产值下降20%，利润下降X%，用电量增长3.5%。"
    evidence = evidence_for(text)
    verdict = judge("上半年全区利润下降了多少", hits_for(text), evidence)
    assert verdict.answerable is False and "X" in verdict.reason
    assert judge("上半年全区工业产值下降了多少", hits_for(text), evidence).answerable is True


@pytest.mark.parametrize(("question", "title", "text"), [
    # a height named by the adjective only
    ("青皮木兰有多高", "青皮木兰", "青皮木兰是木兰科乔木。树高可达25米，胸径约1米。"),
    # a count in Chinese numerals
    ("实验中学目前有几个校区", "实验中学", "实验中学创办于1956年。学校现有两个校区，分别位于城东和城西。"),
    # a month range, away from the asked event's words
    ("青皮木兰什么时候开花", "青皮木兰", "青皮木兰是木兰科乔木。花期为4-5月，果期9-10月。"),
    # a season
    ("白头翁什么时候开花", "白头翁", "白头翁是毛茛科植物。其花期在春季，花为紫色。"),
], ids=["height", "count", "month", "season"])
def test_a_question_answered_by_a_distance_count_or_month_is_answerable(question, title, text):
    verdict = judge(question, titled_hits((title, text)), evidence_for(text))
    assert verdict.answerable is True, verdict.reason


def test_the_asked_attribute_without_any_figure_is_still_unanswerable():
    text = "我们的一般公共预算收入位次还比较低，引进国内实际到位资金还比较少，增长率还比较缓慢。"
    verdict = judge("东城区引进的国内实际到位资金有多少", hits_for(text), evidence_for(text))
    assert verdict.answerable is False


def test_a_quoted_word_of_the_question_leads_to_the_sentence_that_holds_it():
    # The first sentence shares 讲话, 水平 and more characters; only the second holds the quoted word itself.
    text = "讲话要求各项工作水平再提高。高水平就是治理现代化。"
    answer = build_answer("讲话里的“高水平”指的是什么", hits_for(text), evidence_for(text))
    assert answer.text == "高水平就是治理现代化。"


def test_passage_scorer_prefers_the_passage_whose_sentence_answers():
    from qa.search.answer import passage_scorer
    from tests.qa.search.documents import BIOGRAPHY

    title, body = BIOGRAPHY.split("\n", 1)
    opening = body[:body.index("1969年5月，任")]  # names the person throughout, holds no post by date
    posts = body[body.index("1992年4月"):]
    weights = TermWeights([opening, posts, "黄鳍紫鱼分布于西太平洋区。"])
    score = passage_scorer("1992年4月，罗保铭担任什么职务？", weights)
    assert score(posts, title) > score(opening, title) >= 0.0
    assert score("", title) == 0.0


# --- values with the asked unit, dates with a number, rankings ----------------------------------------------------


def test_asked_figure_reads_the_unit_the_question_names():
    from qa.search.asked import asked_figure

    money = asked_figure("上半年一般公共预算收入完成了多少亿元")
    assert money.search("固定资产投资完成10.4亿元") and not money.search("完成了18个") and not money.search("总投资亿元")
    years = asked_figure("禁令要持续几年")
    assert years.search("落实长江十年禁渔令") and years.search("生存了近2,400万年") and not years.search("2020年")
    assert asked_figure("全区复工企业有多少户") is None


def test_a_figure_without_the_asked_unit_does_not_answer():
    # The asked attribute (收入) has no figure; the verb (完成) has one elsewhere, with a money unit.
    question = "上半年一般公共预算收入完成了多少亿元"
    verdict = judge(question, hits_for(GUTA_PARAGRAPH), evidence_for(GUTA_PARAGRAPH))
    assert verdict.answerable is False and "数字" in verdict.reason
    text = "上半年一般公共预算收入完成3.2亿元，增长5%。"
    assert judge(question, hits_for(text), evidence_for(text)).answerable is True


def test_the_answer_sentence_with_the_asked_unit_answers_a_paraphrase():
    # Shares only 长江 with the question; the chosen answer gives a span of years, the unit asked.
    text = "落实长江十年禁渔令，扎实做好渔民精准识别工作。"
    question = "长江那个不许打鱼的禁令要持续几年"
    assert judge(question, hits_for(text), evidence_for(text)).answerable is False
    assert judge(question, hits_for(text), evidence_for(text), answer=text).answerable is True
    assert build_answer(question, hits_for(text), evidence_for(text)).answerable is True
    withheld = "落实长江X年禁渔令，扎实做好渔民精准识别工作。"
    assert judge(question, hits_for(withheld), evidence_for(withheld), answer=withheld).answerable is False


def test_a_day_question_is_not_answered_by_a_relative_time():
    today = "今天我们召开这次县委扩大会议，主要任务是再动员、再部署。"
    dated = "4月29日，县委扩大会议召开，主要任务是再动员、再部署。"
    question = "县委扩大会议是哪一天召开的"
    verdict = judge(question, hits_for(today), evidence_for(today, dated))
    assert verdict.answerable is False and "时间" in verdict.reason
    assert judge(question, hits_for(dated), evidence_for(today, dated)).answerable is True
    # `什么时候` is answered by a season or a period as before
    assert judge("县委扩大会议什么时候召开", hits_for(today), evidence_for(today, dated)).answerable is True


def test_who_came_first_needs_a_sentence_that_states_a_first_place():
    announced = "会上，苏凯强同志通报了2019年度全区经济社会发展考评排名和十项重点工作排名。"
    ranked = "在2019年度全区考评中，北大街街道位列第一，五一路街道排名第二。"
    question = "2019年度考评排名中排第一的是哪个街道"
    verdict = judge(question, hits_for(announced), evidence_for(announced, ranked))
    assert verdict.answerable is False and "名次" in verdict.reason
    assert judge(question, hits_for(ranked), evidence_for(announced, ranked)).answerable is True


def test_a_thousands_comma_does_not_split_the_figure_from_its_unit():
    # `2,400` was split at the comma (a clause break), leaving `400万年` apart from the asked `生存`.
    text = "扁掌龙亚科首次出现于土仑阶,并持续生存到马斯垂克阶末期,生存了近2,400万年。"
    question = "扁掌龙亚科在地球上生存了多少年"
    assert judge(question, hits_for(text), evidence_for(text)).answerable is True


def test_a_when_question_is_answered_by_a_time_of_day_or_a_solar_term():
    text = "每年夏至当日正午12时26分,人站立在塔底下没有身影。"
    question = "每年的什么时候，人站立在塔底下没有身影"
    assert judge(question, hits_for(text), evidence_for(text)).answerable is True
    undated = "人站立在塔底下常常看不到身影。"
    assert judge(question, hits_for(undated), evidence_for(text, undated)).answerable is False


def test_a_count_question_is_answered_by_a_list_of_the_counted_things():
    from qa.search.asked import counted_noun

    assert counted_noun("卡洛身兼几家骑士团的大团长职位") == "骑士团" and counted_noun("全区复工企业有多少户") == ""
    text = "卡洛身兼圣乔治骑士团、圣斐迪南骑士团和圣真纳罗骑士团的大团长职位。"
    question = "卡洛身兼几家骑士团的大团长职位"
    assert judge(question, hits_for(text), evidence_for(text), answer=text).answerable is True
    one = "卡洛身兼圣乔治骑士团的大团长职位。"
    assert judge(question, hits_for(one), evidence_for(one), answer=one).answerable is False


def test_one_numeral_before_a_unit_is_a_figure_but_a_bare_magnitude_left_by_x_is_not():
    real = "重点实施户均增收千元行动。"
    assert judge("庭院经济每户目标增收多少", hits_for(real), evidence_for(real)).answerable is True
    withheld = "确保全年粮食面积稳定在X万亩，产量稳定在X万吨以上。"
    verdict = judge("全年粮食面积要稳在多少万亩", hits_for(withheld), evidence_for(withheld))
    assert verdict.answerable is False and "X" in verdict.reason


def test_the_answer_sentence_with_the_unit_after_the_number_word_answers():
    # Shares only 疫情 with the question: the number word's unit (天) next to it answers.
    text = "疫情以来经过五十多天的不懈努力，形势持续向好。"
    question = "疫情防控全区一共坚持了多少天了"
    assert judge(question, hits_for(text), evidence_for(text)).answerable is False  # without the chosen answer
    assert judge(question, hits_for(text), evidence_for(text), answer=text).answerable is True
    other = "全区上下不懈努力，疫情防控形势持续向好，已有三个乡镇解除管控。"
    assert judge(question, hits_for(other), evidence_for(other), answer=other).answerable is False


def test_a_first_place_of_another_kind_does_not_answer_which_came_first():
    text = "会上通报了2019年度考评排名。我区在全市竞赛活动考核中位列县域组第一。"
    verdict = judge("2019年考评排名第一的是哪个街道", hits_for(text), evidence_for(text))
    assert verdict.answerable is False and "名次" in verdict.reason
    stated = "会上通报了2019年度考评排名，北大街街道排名第一。"
    assert judge("2019年考评排名第一的是哪个街道", hits_for(stated), evidence_for(stated)).answerable is True
    # a why-question that states the rank is not asking who came first
    assert judge("这首单曲为什么会获得公信榜第1名", hits_for(text), evidence_for(text)).reason != "文档中没有给出名次"


def test_a_list_question_is_answered_with_the_items_the_sentence_announces():
    text = ("我们当前面临的压力依然巨大。一是恢复性增长压力较大。各项指标难以恢复以往增速。"
            "二是收支矛盾更加突出。财政收入下降明显。")
    answer = build_answer("区里现在面临哪几方面压力", hits_for(text), evidence_for(text))
    assert answer.text.startswith("我们当前面临的压力依然巨大。一是恢复性增长压力较大。")
    # not for a question that asks no list
    assert build_answer("区里现在面临的压力大不大", hits_for(text), evidence_for(text)).text == "我们当前面临的压力依然巨大。"
