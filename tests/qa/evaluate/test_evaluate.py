"""Offline evaluation: question files, BEIR folders, the metric summary and the written report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.evaluate.questions import EvalInputError, Question, load_beir, load_questions
from qa.evaluate.report import write_report
from qa.evaluate.run import EvalReport, QuestionResult, evaluate, summarize
from qa.types import Answer, Hit, Passage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {"n", "n_answerable", "hit@1", "hit@3", "hit@5", "mrr@10", "unanswerable", "answer_contains_evidence",
                "wrongly_unanswerable", "answerable_flagged", "by_type", "latency_ms"}
TYPE_KEYS = {"n", "hit@1", "hit@3", "hit@5", "mrr@10", "answer_contains_evidence", "wrongly_unanswerable"}
CMRC_MINI = Path(__file__).resolve().parents[2] / "data" / "cmrc_mini"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def result(qtype: str, rank: int | None, said_answerable: bool, latency: float, evidence=("证据",),
           answer: str = "答案") -> QuestionResult:
    question = Question(f"q-{qtype}-{rank}-{latency}", f"问题{latency}", qtype,
                        tuple(evidence) if qtype != "unanswerable" else ())
    return QuestionResult(question, rank, said_answerable, answer, ("第一段",), latency)


# --- load_questions -------------------------------------------------------------------------------------------------


def test_load_questions_reads_fields_and_defaults(tmp_path: Path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"id": "a1", "question": "森林防火期从哪天开始", "evidence": ["防火期为2023年11月1日"], "type": "when"},
        "",  # blank lines are skipped
        {"question": "清河镇发展了多少座食用菌大棚", "evidence": ["食用菌大棚320座"]},
        {"id": 7, "question": "如何做红烧肉", "evidence": []},
    ])
    questions = load_questions(path)
    assert [q.qid for q in questions] == ["a1", "3", "7"]  # default id: the line number
    assert [q.type for q in questions] == ["when", "factoid", "unanswerable"]
    assert questions[0].evidence == ("防火期为2023年11月1日",)
    assert [q.answerable for q in questions] == [True, True, False]


def test_load_questions_accepts_a_utf8_bom(tmp_path: Path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"question": "问题"}, ensure_ascii=False).encode("utf-8") + b"\n")
    assert [q.question for q in load_questions(path)] == ["问题"]


def test_load_questions_reads_the_documents_a_question_names(tmp_path: Path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"id": "d1", "question": "一", "doc": "000_a.txt", "evidence": ["甲"], "type": "when"},
        {"id": "d2", "question": "二", "doc": None, "docs": ["001_b.txt", "002_c.txt"], "evidence": ["乙"],
         "type": "multi-doc"},
        {"id": "d3", "question": "三", "doc": None, "evidence": [], "type": "unanswerable"},
        {"id": "d4", "question": "四", "evidence": ["丁"]},
    ])
    assert [q.docs for q in load_questions(path)] == [("000_a.txt",), ("001_b.txt", "002_c.txt"), (), ()]


def test_load_questions_of_the_cmrc_format():
    questions = load_questions(CMRC_MINI / "questions.jsonl")
    assert [q.qid for q in questions][:2] == ["TRIAL_1_QUERY_0", "TRIAL_1_QUERY_1"]
    assert all(q.answerable and q.type == "factoid" and len(q.docs) == 1 for q in questions)
    assert questions[0].docs == ("TRIAL_1.txt",)
    assert questions[0].evidence == ("2008年", "2008")  # the distinct gold answers
    for q in questions:  # each names a corpus file that holds one of its answers
        text = (CMRC_MINI / "corpus" / q.docs[0]).read_text(encoding="utf-8")
        assert any(e in text for e in q.evidence)


@pytest.mark.parametrize(("field", "value"), [("doc", 5), ("doc", ""), ("docs", "a.txt"), ("docs", ["a.txt", 3])])
def test_bad_document_names_are_rejected(tmp_path: Path, field, value):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "问题", "evidence": ["甲"], field: value}])
    with pytest.raises(EvalInputError, match=f"{field}"):
        load_questions(path)


def test_load_questions_of_the_tiny_eval_file(tiny_eval_path: Path, passage_with):
    questions = load_questions(tiny_eval_path)
    assert len(questions) == 7
    assert sum(q.answerable for q in questions) == 5
    for q in questions:  # every evidence string is an exact quote of one tiny passage
        for e in q.evidence:
            passage_with(e)


def test_missing_question_file(tmp_path: Path):
    with pytest.raises(EvalInputError) as info:
        load_questions(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in str(info.value)


def test_bad_json_line_names_the_line_number(tmp_path: Path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "一"}, {"question": "二"}, '{"question": "三",'])
    with pytest.raises(EvalInputError) as info:
        load_questions(path)
    assert f"{path}:3:" in str(info.value)


@pytest.mark.parametrize("row", [{"id": "x"}, {"question": ""}, {"question": "   "}, {"question": 5}, ["问题"]])
def test_line_without_a_question(tmp_path: Path, row):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "好问题"}, row])
    with pytest.raises(EvalInputError) as info:
        load_questions(path)
    assert ":2:" in str(info.value) and "question" in str(info.value)


def test_evidence_must_be_a_list_of_strings(tmp_path: Path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "问题", "evidence": "不是列表"}])
    with pytest.raises(EvalInputError, match="evidence"):
        load_questions(path)


def test_empty_question_file(tmp_path: Path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(EvalInputError):
        load_questions(path)


# --- summarize ------------------------------------------------------------------------------------------------------


@pytest.fixture
def hand_results() -> list[QuestionResult]:
    # Answerable: factoid ranks 1, 3, None; numeric ranks 2, 6. Unanswerable: two, one flagged.
    # Latencies 10..70 ms.
    return [
        result("factoid", 1, True, 10.0),
        result("factoid", 3, True, 20.0),
        result("factoid", None, False, 30.0),
        result("numeric", 2, True, 40.0),
        result("numeric", 6, False, 50.0),
        result("unanswerable", None, False, 60.0),
        result("unanswerable", None, True, 70.0),
    ]


def test_summary_has_exactly_the_documented_keys(hand_results):
    summary = summarize(hand_results)
    assert set(summary) == SUMMARY_KEYS
    assert set(summary["unanswerable"]) == {"n", "flagged"}
    assert set(summary["latency_ms"]) == {"p50", "p95"}
    assert set(summary["by_type"]) == {"factoid", "numeric"}  # unanswerable questions have no retrieval metrics
    for values in summary["by_type"].values():
        assert set(values) == TYPE_KEYS
    json.dumps(summary)  # printable by `qa eval --json`


def test_summary_metric_values_computed_by_hand(hand_results):
    s = summarize(hand_results)
    assert s["n"] == 7
    assert s["n_answerable"] == 5
    assert s["hit@1"] == pytest.approx(1 / 5, abs=1e-4)      # rank 1
    assert s["hit@3"] == pytest.approx(3 / 5, abs=1e-4)      # ranks 1, 3, 2
    assert s["hit@5"] == pytest.approx(3 / 5, abs=1e-4)      # rank 6 is outside
    assert s["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1 / 6 + 0) / 5, abs=1e-4)  # = 0.4
    assert s["unanswerable"] == {"n": 2, "flagged": pytest.approx(0.5)}
    assert s["wrongly_unanswerable"] == pytest.approx(2 / 5, abs=1e-4)  # factoid/None and numeric/6 said 不知道
    assert s["answerable_flagged"] == s["wrongly_unanswerable"]  # the old name of the same figure
    factoid, numeric = s["by_type"]["factoid"], s["by_type"]["numeric"]
    assert factoid["n"] == 3
    assert factoid["hit@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert factoid["hit@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert factoid["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert factoid["wrongly_unanswerable"] == pytest.approx(1 / 3, abs=1e-4)
    assert numeric["wrongly_unanswerable"] == pytest.approx(1 / 2, abs=1e-4)
    assert numeric["n"] == 2
    assert numeric["hit@1"] == 0.0
    assert numeric["hit@5"] == pytest.approx(1 / 2, abs=1e-4)
    assert numeric["mrr@10"] == pytest.approx((1 / 2 + 1 / 6) / 2, abs=1e-4)
    # Latencies 10, 20, ..., 70: median 40; p95 at position 6 * 0.95 = 5.7 -> 60 + 0.7 * 10.
    assert s["latency_ms"]["p50"] == pytest.approx(40.0)
    assert s["latency_ms"]["p95"] == pytest.approx(67.0)


def test_summary_rounds_to_four_digits():
    results = [result("factoid", 3, True, 1.0), result("factoid", None, True, 1.0), result("factoid", None, True, 1.0)]
    s = summarize(results)
    assert s["mrr@10"] == 0.1111  # (1/3) / 3
    assert s["hit@3"] == 0.3333


def test_summary_without_unanswerable_or_answerable_questions():
    only_answerable = summarize([result("factoid", 1, True, 5.0)])
    assert only_answerable["unanswerable"] == {"n": 0, "flagged": 0.0}
    only_unanswerable = summarize([result("unanswerable", None, False, 5.0)])
    assert only_unanswerable["n_answerable"] == 0
    assert only_unanswerable["hit@1"] == only_unanswerable["mrr@10"] == 0.0
    assert only_unanswerable["answerable_flagged"] == only_unanswerable["wrongly_unanswerable"] == 0.0
    assert only_unanswerable["answer_contains_evidence"] is None
    assert only_unanswerable["by_type"] == {}
    assert only_unanswerable["unanswerable"]["flagged"] == 1.0


# --- evaluate -------------------------------------------------------------------------------------------------------


def hit(text: str, doc_id: str = "d") -> Hit:
    return Hit(Passage(f"{doc_id}:0-{len(text)}", doc_id, "标题", (), 0, 0, len(text), text), score=1.0)


def test_evaluate_ranks_by_the_evidence_hit_rule():
    questions = [
        Question("1", "防火期", "when", ("森林防火期为2023年11月1日",)),
        Question("2", "大棚", "numeric", ("食用菌大棚320座",)),
        Question("3", "红烧肉", "unanswerable", ()),
    ]
    replies = {
        # Evidence matched across a line break and full-width digits (NFKC + whitespace removal).
        "防火期": Answer("防火期", "答", True, (hit("无关内容"), hit("全区森林防火期为\n２０２３年11月1日至次年"))),
        "大棚": Answer("大棚", "答", False, tuple(hit(f"第{i}段") for i in range(12)) + (hit("食用菌大棚320座"),)),
        "红烧肉": Answer("红烧肉", "不知道", False, (hit("无关内容"),)),
    }
    report = evaluate(lambda q: replies[q], questions, "hybrid")
    assert report.mode == "hybrid"
    assert [r.rank for r in report.results] == [2, None, None]  # the 13th passage is beyond the top 10
    assert [r.answerable for r in report.results] == [True, False, False]
    assert report.results[0].top_passages[0] == "无关内容"
    assert report.summary == summarize(report.results)
    assert report.summary["hit@3"] == pytest.approx(0.5)
    assert report.summary["unanswerable"]["flagged"] == 1.0


def test_evaluate_maps_index_doc_ids_back_to_beir_ids():
    questions = [Question("q1", "问题", "beir", (), frozenset({"c2"}))]
    answer = Answer("问题", "答", True, (hit("甲", "idx-1"), hit("乙", "idx-2")))
    mapping = {"idx-1": "c1", "idx-2": "c2"}
    report = evaluate(lambda q: answer, questions, "bm25", doc_id_of=mapping.get)
    assert report.results[0].rank == 2


SOURCES = {"idx-a": "/corpus/TRIAL_1.txt", "idx-b": "/corpus/TRIAL_2.txt", "idx-c": "/corpus/TRIAL_3.txt"}


def test_a_passage_with_the_evidence_from_another_document_is_no_hit():
    questions = [Question("q1", "哪一年", "factoid", ("2008年",), docs=("TRIAL_2.txt",)),
                 Question("q2", "哪一年", "factoid", ("2008年",), docs=("TRIAL_3",)),  # no extension: still matched
                 Question("q3", "哪一年", "factoid", ("2008年",))]  # names no document: any passage may hit
    answer = Answer("哪一年", "答", True, (hit("2008年上线", "idx-a"), hit("无关", "idx-b"), hit("2008年大增", "idx-b"),
                                       hit("2008年，锡兰", "idx-c")))
    report = evaluate(lambda q: answer, questions, "hybrid", doc_id_of=SOURCES.get)
    assert [r.rank for r in report.results] == [3, 4, 1]
    # Without a way to name documents (library callers of the old signature) only the evidence counts.
    assert [r.rank for r in evaluate(lambda q: answer, questions, "hybrid").results] == [1, 1, 1]


def test_multi_doc_question_hits_in_any_listed_document():
    question = Question("m", "哪些", "multi-doc", ("放管服",), docs=("TRIAL_2.txt", "TRIAL_3.txt"))
    answer = Answer("哪些", "答", True, (hit("放管服改革", "idx-a"), hit("深化放管服", "idx-c")))
    assert evaluate(lambda q: answer, [question], "bm25", doc_id_of=SOURCES.get).results[0].rank == 2
    unknown = Answer("哪些", "答", True, (hit("放管服改革", "idx-unknown"),))  # a document the mapping lacks
    assert evaluate(lambda q: unknown, [question], "bm25", doc_id_of=SOURCES.get).results[0].rank is None


def test_answer_contains_evidence_and_wrongly_unanswerable_per_type():
    questions = [Question("1", "甲", "factoid", ("56.7亿元",)), Question("2", "乙", "factoid", ("320座",)),
                 Question("3", "丙", "when", ("11月1日",)), Question("4", "丁", "when", ("5月31日",)),
                 Question("5", "戊", "unanswerable", ())]
    passage = (hit("生产总值完成56.7亿元，大棚320座，11月1日至5月31日"),)
    replies = {
        "甲": Answer("甲", "地区生产总值完成 56.7亿元。", True, passage),   # found and said (whitespace ignored)
        "乙": Answer("乙", "清河镇发展了大棚。", True, passage),           # found, but the answer misses it
        "丙": Answer("丙", "防火期为１１月1日至次年。", True, passage),     # full-width digits: NFKC
        "丁": Answer("丁", "不知道：文档中没有给出具体时间。", False, passage),  # wrongly unanswerable
        "戊": Answer("戊", "不知道：文档中没有相关内容。", False, passage),
    }
    s = evaluate(lambda q: replies[q], questions, "hybrid").summary
    assert s["answer_contains_evidence"] == pytest.approx(2 / 4)
    assert s["wrongly_unanswerable"] == s["answerable_flagged"] == pytest.approx(1 / 4)
    assert s["by_type"]["factoid"]["answer_contains_evidence"] == pytest.approx(1 / 2)
    assert s["by_type"]["factoid"]["wrongly_unanswerable"] == 0.0
    assert s["by_type"]["when"]["answer_contains_evidence"] == pytest.approx(1 / 2)
    assert s["by_type"]["when"]["wrongly_unanswerable"] == pytest.approx(1 / 2)
    assert "unanswerable" not in s["by_type"]
    assert s["unanswerable"] == {"n": 1, "flagged": 1.0}


def test_answer_contains_evidence_is_none_without_evidence_strings():
    questions = [Question("q1", "问题", "beir", (), frozenset({"c1"}))]
    s = evaluate(lambda q: Answer(q, "答", True, (hit("甲", "c1"),)), questions, "dense").summary
    assert s["hit@1"] == 1.0
    assert s["answer_contains_evidence"] is None
    assert s["by_type"]["beir"]["answer_contains_evidence"] is None
    json.dumps(s)


# --- load_beir ------------------------------------------------------------------------------------------------------


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [
        {"_id": "c1", "title": "森林防火", "text": "全区森林防火期为11月1日至次年5月31日。"},
        {"_id": "c2", "title": "乡村振兴", "text": "清河镇发展食用菌大棚320座。"},
        {"_id": "c3", "title": "", "text": "城关区地区生产总值完成56.7亿元。"},
    ])
    write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "森林防火期是什么时候"},
        {"_id": 2, "text": "清河镇有多少食用菌大棚"},
        {"_id": "q3", "text": "没有相关文档的问题"},
    ])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        "q1\tc1\t1\n"
        "2\tc2\t1\n"
        "2\tc3\t2\n"
        "q3\tc3\t0\n"        # not relevant: score 0
        "q9\tc1\t1\n",       # a query that is not in queries.jsonl
        encoding="utf-8")
    return folder


def test_load_beir_reads_corpus_queries_and_positive_qrels(beir_dir: Path):
    corpus, questions = load_beir(beir_dir)
    assert [row["_id"] for row in corpus] == ["c1", "c2", "c3"]
    by_id = {q.qid: q for q in questions}
    assert set(by_id) == {"q1", "2"}
    assert by_id["q1"].question == "森林防火期是什么时候"
    assert by_id["q1"].relevant_docs == frozenset({"c1"})
    assert by_id["2"].relevant_docs == frozenset({"c2", "c3"})
    assert all(q.type == "beir" and q.answerable and q.evidence == () for q in questions)


def test_load_beir_other_split(beir_dir: Path):
    (beir_dir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\tc3\t1\n", encoding="utf-8")
    _, questions = load_beir(beir_dir, split="dev")
    assert [(q.qid, q.relevant_docs) for q in questions] == [("q3", frozenset({"c3"}))]


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_load_beir_names_the_missing_file(beir_dir: Path, missing):
    (beir_dir / missing).unlink()
    with pytest.raises(EvalInputError) as info:
        load_beir(beir_dir)
    assert missing in str(info.value)


def test_load_beir_bad_corpus_json(beir_dir: Path):
    (beir_dir / "corpus.jsonl").write_text('{"_id": "c1", "text": \n', encoding="utf-8")
    with pytest.raises(EvalInputError):
        load_beir(beir_dir)


def test_load_beir_with_no_matching_queries(beir_dir: Path):
    (beir_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\tc1\t1\n", encoding="utf-8")
    with pytest.raises(EvalInputError):
        load_beir(beir_dir)


# --- write_report ---------------------------------------------------------------------------------------------------


def test_write_report_creates_markdown_and_png(tmp_path: Path, hand_results):
    reports = [EvalReport("hybrid", tuple(hand_results), summarize(hand_results)),
               EvalReport("bm25", tuple(hand_results[:2]), summarize(hand_results[:2]))]
    folder = tmp_path / "out" / "report"
    path = write_report(reports, folder, "tiny_eval.jsonl")
    assert path == folder / "report.md"
    markdown = path.read_text(encoding="utf-8")
    assert "tiny_eval.jsonl" in markdown
    assert "hit_at_k.png" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith(("| hybrid | 7 |", "| bm25 | 2 |"))]
    assert len(table_rows) == 2
    # mode, n, hit@1, hit@3, hit@5, MRR@10, answer holds evidence, wrongly unanswerable, unanswerable flagged, p50
    assert table_rows[0] == "| hybrid | 7 | 0.200 | 0.600 | 0.600 | 0.400 | 0.000 | 0.400 | 0.500 | 40.0 |"
    # The missed answerable questions are listed for reading.
    missed = [r for r in hand_results if r.question.answerable and r.rank != 1]
    for r in missed:
        assert r.question.question in markdown
    assert "answer holds evidence" in markdown and "wrongly unanswerable" in markdown
    # One row per mode and answerable type in the per-type table, with both new figures.
    assert "| hybrid | factoid | 3 | 0.333 | 0.667 | 0.667 | 0.444 | 0.000 | 0.333 |" in markdown
    assert "| bm25 | factoid | 2 |" in markdown
    png = folder / "hit_at_k.png"
    data = png.read_bytes()
    assert len(data) > 1000
    assert data.startswith(PNG_MAGIC)


def test_write_report_without_unanswerable_questions_shows_no_flag_rate(tmp_path: Path):
    results = [result("factoid", 1, True, 5.0, answer="答案是证据。"), result("factoid", None, False, 6.0)]
    markdown = write_report([EvalReport("hybrid", tuple(results), summarize(results))], tmp_path, "cmrc").read_text(
        encoding="utf-8")
    # n, hit@1, hit@3, hit@5, MRR@10, answer holds evidence, wrongly unanswerable, unanswerable flagged (none), p50
    assert "| hybrid | 2 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | – | 5.5 |" in markdown
    assert "Wrong 不知道 decisions (hybrid)" in markdown
