"""`qa kb list|create|delete|key` and `--kb NAME` on ingest/index/ask/eval (hashing embedder, tiny corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.knowledge_bases.access import KeyStore, hash_key
from tests.qa.test_cli import assert_one_line_error


@pytest.fixture
def kb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("QA_API_KEY", "QA_KEYS_FILE", "QA_INDEX_DIR", "QA_DATA_DIR", "QA_CORPUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QA_EMBEDDER", "hashing")
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "default"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_kb_create_index_ask_eval_delete(run_cli, kb_env, tiny_dir, tiny_eval_path):
    code, out, _ = run_cli("kb", "create", "tiny", "--description", "三篇短文")
    assert code == 0 and "created" in out
    assert_one_line_error(*run_cli("kb", "create", "tiny"))
    assert "letters, digits" in assert_one_line_error(*run_cli("kb", "create", "../up"))
    code, out, _ = run_cli("kb", "list", "--json")
    listed = json.loads(out)
    assert [kb["name"] for kb in listed] == ["default", "tiny"]
    assert listed[1]["description"] == "三篇短文" and listed[1]["index_dir"].startswith(str(kb_env / "data" / "tiny"))
    assert run_cli("index", "--kb", "tiny", "--quiet", tiny_dir)[0] == 0
    code, out, _ = run_cli("ask", "--kb", "tiny", "--json", "全区森林防火期从哪天开始")
    assert code == 0 and "2023年11月1日" in json.loads(out)["answer"]
    assert not (kb_env / "default").exists()  # `default` was never touched
    code, out, _ = run_cli("ingest", "--kb", "tiny", "--json", tiny_dir)
    assert code == 0 and len(json.loads(out)) == 3
    code, out, _ = run_cli("eval", "--kb", "tiny", "--json", tiny_eval_path)
    assert code == 0 and json.loads(out)
    assert "unknown knowledge base 'nope'" in assert_one_line_error(*run_cli("ask", "--kb", "nope", "问题"))
    assert "cannot be deleted" in assert_one_line_error(*run_cli("kb", "delete", "default"))
    assert run_cli("kb", "delete", "tiny")[0] == 0
    assert not (kb_env / "data" / "tiny").exists()
    assert "unknown" in assert_one_line_error(*run_cli("kb", "delete", "tiny"))


def test_kb_key_stores_only_the_hash(run_cli, kb_env):
    keys = kb_env / "keys.json"
    code, out, _ = run_cli("kb", "key", "hr", "--read", "policies,minutes", "--write", "hr-files",
                           "--keys-file", keys)
    key = out.strip()
    assert code == 0 and key.startswith("zhqa-") and len(key) > 40
    text = keys.read_text()
    assert key not in text and hash_key(key) in text
    access = KeyStore(keys).lookup(key)
    assert access.can_read("policies") and access.can_write("hr-files") and not access.can_write("policies")
    assert not access.can_read("default")
    assert "--read" in assert_one_line_error(*run_cli("kb", "key", "x", "--keys-file", keys))
    assert "QA_KEYS_FILE" in assert_one_line_error(*run_cli("kb", "key", "x", "--read", "a"))


def test_serve_kb_names_the_knowledge_bases_loaded_at_start(kb_env):
    from qa.cli import _settings, build_parser

    args = build_parser().parse_args(["serve", "--kb", "policies", "--kb", "minutes"])
    assert _settings(args).kb_preload == ["policies", "minutes"]
