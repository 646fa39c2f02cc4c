"""Term weights and sentence spans shared by retrieval's re-rank and the answer."""

from __future__ import annotations

from qa.search.reading import TermWeights, sentence_spans


def test_rare_terms_weigh_more_and_absent_ones_most():
    weights = TermWeights(["森林防火期开始", "森林防火工作", "经济发展"])
    assert weights.idf("防火") < weights.idf("经济") < weights.idf("海洋")
    assert weights.coverage(weights.terms("森林防火"), "森林防火期") == 1.0
    assert weights.coverage(set(), "任何文字") == 0.0


def test_a_sentence_end_inside_brackets_does_not_end_the_sentence():
    text = "猴面包树（学名：Adansonia。又名猢狲树）是一种乔木。它原产非洲。"
    spans = [text[a:b] for a, b in sentence_spans(text)]
    assert spans == ["猴面包树（学名：Adansonia。又名猢狲树）是一种乔木。", "它原产非洲。"]
