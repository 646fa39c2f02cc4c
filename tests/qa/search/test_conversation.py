"""Follow-up planning with a learned vocabulary (the API tests cover the conversations of multiturn.jsonl)."""

from __future__ import annotations

from qa.index.vocabulary import Vocabulary
from qa.search.conversation import plan_followup


def test_a_name_learned_with_its_title_is_swapped_not_carried_as_topic() -> None:
    # The documents repeat 张书杰同志, so the vocabulary learns it as one noun: it is still the person asked about.
    vocabulary = Vocabulary({"张书杰同志": 4, "李朝锋": 3})
    plan = plan_followup([("user", "张书杰同志强调了什么"), ("user", "李朝锋同志呢？")], vocabulary)
    assert plan.elliptical
    assert "李朝锋" in plan.query
    assert "张书杰" not in plan.query


def test_without_vocabulary_the_same_swap_holds() -> None:
    plan = plan_followup([("user", "张书杰同志强调了什么"), ("user", "李朝锋同志呢？")])
    assert "李朝锋" in plan.query and "张书杰" not in plan.query
