"""Tests for qa.index.tokenize: char n-grams, jieba, factory, query analysis with a learned vocabulary."""

from __future__ import annotations

import threading

import pytest

from qa.index import tokenize as tk
from qa.index.tokenize import (
    QUESTION_WORDS,
    STOPWORDS,
    TOKENIZER_NAMES,
    CharNgramTokenizer,
    JiebaTokenizer,
    MixedTokenizer,
    content_terms,
    create_tokenizer,
    named_entities,
)
from qa.index.vocabulary import Vocabulary

# Words as `qa.index.vocabulary` learns them from documents (counts of occurrences).
LEARNED = Vocabulary({"古塔化工园": 2, "规划环评": 2, "城乡融合": 3, "李朝锋": 2, "营商环境": 3})


def test_char_unigrams_and_bigrams_within_cjk_runs() -> None:
    tokens = CharNgramTokenizer()("古塔区，放管服")
    assert tokens == ["古", "古塔", "塔", "塔区", "区", "放", "放管", "管", "管服", "服"]
    assert "区放" not in tokens  # no bigram across punctuation


def test_char_keeps_ascii_words_and_decimals_whole() -> None:
    tokens = CharNgramTokenizer()("ＧＤＰ增长10.4%，投资38.1亿元")
    assert "gdp" in tokens and "10.4" in tokens and "38.1" in tokens
    assert "%" not in tokens and "," not in tokens
    assert "p增" not in tokens  # no n-gram across script boundaries


def test_char_drops_stopwords_and_question_words() -> None:
    tokens = CharNgramTokenizer()("大连有多少确诊病例是什么为什么")
    for stop in ("多少", "什么", "为什", "是", "多", "少", "什", "么"):
        assert stop not in tokens
    assert "确诊" in tokens and "病例" in tokens and "大连" in tokens
    # question words are separators: no n-gram bridges them
    assert "有多" not in tokens and "少确" not in tokens


def test_char_bigrams_only_and_trigrams() -> None:
    assert CharNgramTokenizer(ngrams=(2,))("古塔区") == ["古塔", "塔区"]
    assert "古塔区" in CharNgramTokenizer(ngrams=(1, 2, 3))("古塔区")


@pytest.mark.parametrize("ngrams", [(), (0,), (4,), (1, 5)])
def test_char_rejects_bad_ngrams(ngrams: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="ngram|empty"):
        CharNgramTokenizer(ngrams=ngrams)


def test_char_empty_and_punctuation_only() -> None:
    assert CharNgramTokenizer()("") == []
    assert CharNgramTokenizer()("，。！？") == []


def test_stopword_sets() -> None:
    assert {"的", "了", "吗", "呢", "是", "在", "和"} <= STOPWORDS
    assert {"多少", "什么", "哪些", "如何", "怎么", "是否", "哪个", "哪里", "哪天", "为什么"} <= QUESTION_WORDS
    assert QUESTION_WORDS <= STOPWORDS
    assert "为什" in STOPWORDS  # bigrams of question words are stop bigrams


def test_jieba_uses_its_own_dictionary() -> None:
    words = JiebaTokenizer()("古塔区要抓好放管服和营商环境")
    assert "古塔区" in words and "放管服" in words
    assert "和" not in words and "，" not in words


def test_jieba_search_mode_adds_subwords() -> None:
    words = JiebaTokenizer(mode="search")("中华人民共和国")
    assert {"中华", "人民", "共和国", "中华人民共和国"} <= set(words)


def test_jieba_rejects_bad_mode() -> None:
    with pytest.raises(ValueError, match="'exact', 'search'"):
        JiebaTokenizer(mode="full")  # type: ignore[arg-type]


def test_jieba_is_shared_and_thread_safe() -> None:
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(tk.get_jieba())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_mixed_prefixes_words() -> None:
    tokens = MixedTokenizer()("张书杰优化营商环境")
    assert "w:张书杰" in tokens and "w:营商" in tokens
    assert "营商" in tokens and "营" in tokens
    assert not any(t.startswith("w:") and len(t) == 3 for t in tokens)  # no single-char words


def test_create_tokenizer_names() -> None:
    assert set(TOKENIZER_NAMES) >= {"char", "char2", "char123", "jieba", "jieba_search", "mixed"}
    for name in TOKENIZER_NAMES:
        assert create_tokenizer(name)("古塔区疫情防控")


def test_create_tokenizer_unknown_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'.*char.*jieba_search"):
        create_tokenizer("bpe")


def test_content_terms_drop_question_words_and_particles() -> None:
    terms = content_terms("古塔化工园规划环评专家评审是哪天通过的", LEARNED)
    words = [t.word for t in terms]
    assert words[:3] == ["古塔化工园", "规划环评", "专家"]
    assert not {"哪天", "是", "的"} & set(words)
    assert terms[0].flag == "n"


def test_content_terms_join_only_learned_words() -> None:
    """Without the index's vocabulary jieba's pieces stay apart; another index's words are not applied."""
    assert [t.word for t in content_terms("古塔化工园规划环评")][:3] == ["古塔", "化工", "园"]
    other = Vocabulary({"化工园规": 3})  # a learned word whose ends cut jieba's words is never applied
    assert [t.word for t in content_terms("古塔化工园规划环评", other)][:3] == ["古塔", "化工", "园"]


def test_content_terms_drop_glued_question_words() -> None:
    words = {t.word for t in content_terms("城乡融合要推动哪几个一体化，由谁来抓", LEARNED)}
    assert "城乡融合" in words and "一体化" in words
    assert not any("哪" in w or "谁" in w for w in words)


def test_named_entities() -> None:
    assert named_entities("张书杰要求抓好哪个专项行动") == ["张书杰"]
    assert named_entities("古塔区讲话和魏都区会议") == ["古塔区", "魏都区"]
    assert named_entities("李朝锋同志的讲话", LEARNED) == ["李朝锋"]
    # 古塔 (tagged a person by jieba) is part of a learned compound, which is not a proper name.
    assert named_entities("古塔化工园规划环评", LEARNED) == []
    assert named_entities("城乡融合要推动哪几个一体化", LEARNED) == []


def test_a_short_learned_name_inside_another_word_is_not_a_name() -> None:
    vocabulary = Vocabulary({"施策": 5, "精准施策": 5})  # jieba tags 施策 alone as a person name
    assert vocabulary.words["施策"].startswith("nr")
    assert named_entities("精准施策有哪些要求", vocabulary) == []
