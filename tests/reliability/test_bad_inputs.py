"""The bad input catalogue: every input in `CASES` is sent to a real app, and docs/bad_inputs.md is its record.

Each case asserts its status code (and, for errors, a phrase of the message); all errors must be 4xx with a JSON
body `{"detail": <sentence>, "type": <kind>}`. After all cases, the service must still answer /health and a normal
search. `test_doc_matches_observed_answers` renders the table from what the server actually answered and compares
it with docs/bad_inputs.md, so the document cannot drift from the code. To regenerate the document after changing
a case or a message:

    ZHQA_WRITE_BAD_INPUTS=1 .venv/bin/python -m pytest tests/reliability/test_bad_inputs.py

The apps run over a copy of the sample index with the hashing embedder and the default limits (body 8 MB, upload
5 MB, query 2000 characters, top_k 1..100).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.support import ROOT, make_settings

DOC_PATH = ROOT / "docs" / "bad_inputs.md"
API_KEY = "catalogue-key"
QUESTION = "古塔区固定资产投资完成多少"
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Clients:
    open: TestClient  # no API key, writable
    keyed: TestClient  # QA_API_KEY set
    read_only: TestClient  # QA_READ_ONLY=true


@dataclass(frozen=True)
class Case:
    """One bad (or suspicious) input: what is sent, the status it must get, a phrase its message must hold."""

    key: str
    what: str  # the input, as a person would describe it (Markdown)
    request: str  # method and path
    status: int
    send: Callable[[Clients], httpx.Response]
    phrase: str = ""  # must occur in the error message (4xx) ...
    answer: str = ""  # ... or, for a 2xx, what the answer is (written to the table; `check` proves it)
    check: Callable[[httpx.Response], None] | None = None


def _search(body) -> Callable[[Clients], httpx.Response]:
    return lambda c: c.open.post("/v1/search", json=body)


def _search_raw(content: bytes, headers: dict | None = None) -> Callable[[Clients], httpx.Response]:
    return lambda c: c.open.post("/v1/search", content=content, headers=JSON_HEADERS if headers is None else headers)


def _chat(body) -> Callable[[Clients], httpx.Response]:
    return lambda c: c.open.post("/v1/chat/completions", json=body)


def _upload(name: str, data: bytes, client: str = "open") -> Callable[[Clients], httpx.Response]:
    return lambda c: getattr(c, client).post("/v1/documents", files={"file": (name, data, "text/plain")})


def _user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def _echoed_as_text(text: str) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        body = response.json()
        assert body["query"] == text.strip()
        assert response.headers["content-type"].startswith("application/json")
        # JSON, never HTML: the chat page shows answers with textContent, so markup in them stays text.
        assert "<script" not in response.headers["content-type"]
    return check


def _unanswered(text: str) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        _echoed_as_text(text)(response)
        assert response.json()["hits"], "the closest passages are still returned"
    return check


def _label_only(expected_source: str) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        assert response.json()["document"]["source"] == expected_source
    return check


def _duplicate(c: Clients) -> httpx.Response:
    text = "重复上传测试。古塔区第二次上传同一份文件，应当不再新建文档。" * 5
    first = c.open.post("/v1/documents", json={"text": text, "title": "重复上传"})
    assert first.status_code == 201, first.text
    return c.open.post("/v1/documents", json={"text": text, "title": "重复上传"})


def _not_created(response: httpx.Response) -> None:
    assert response.json()["created"] is False


def _chunked(size: int) -> Callable[[Clients], httpx.Response]:
    def send(c: Clients) -> httpx.Response:
        def body() -> Iterator[bytes]:
            block = b"x" * 65536
            for _ in range(size // len(block) + 1):
                yield block
        return c.open.post("/v1/search", content=body(), headers=JSON_HEADERS)
    return send


_SENTENCE = "古塔区固定资产投资完成10.4亿元。"
HUGE_TEXT = _SENTENCE * (50_000_000 // len(_SENTENCE.encode()) + 1)  # 50 MB of repeated text in UTF-8
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4

CASES: list[Case] = [
    # --- questions --------------------------------------------------------------------------------------------
    Case("empty-query", 'empty query `""`', "POST /v1/search", 422, _search({"query": ""}), "empty"),
    Case("blank-query", 'whitespace query `"  \\n\\t "`', "POST /v1/search", 422, _search({"query": "  \n\t "}),
         "empty"),
    Case("long-query", "100,000-character query", "POST /v1/search", 422, _search({"query": "古" * 100_000}),
         "limit is 2000"),
    Case("punctuation-query", 'punctuation only `"？？！！。。"`', "POST /v1/search", 422,
         _search({"query": "？？！！。。"}), "searchable"),
    Case("control-query", 'control characters `"\\u0000\\u0007古塔区"`', "POST /v1/search", 422,
         _search({"query": "\x00\x07古塔区"}), "control character"),
    Case("surrogate-query", 'lone surrogate, raw JSON `{"query": "\\ud800古塔区"}`', "POST /v1/search", 422,
         _search_raw(b'{"query": "\\ud800\\u53e4\\u5854\\u533a"}'), "surrogate"),
    Case("low-surrogate-query", 'lone low surrogate, raw JSON `{"query": "古塔区\\udfff"}`', "POST /v1/search", 422,
         _search_raw(b'{"query": "\\u53e4\\u5854\\u533a\\udfff"}'), "surrogate"),
    Case("emoji-query", 'emoji and mixed scripts `"🔥古塔区GDP增长📈 Ünïcödé русский"`', "POST /v1/search", 200,
         _search({"query": "🔥古塔区GDP增长📈 Ünïcödé русский"}), answer="answered; the query is echoed as JSON text",
         check=_echoed_as_text("🔥古塔区GDP增长📈 Ünïcödé русский")),
    Case("sql-query", "SQL injection `\"'; DROP TABLE documents; --\"`", "POST /v1/search", 200,
         _search({"query": "'; DROP TABLE documents; --"}),
         answer="不知道 (unanswerable) with the closest passages; nothing is interpreted (there is no SQL)",
         check=_unanswered("'; DROP TABLE documents; --")),
    Case("html-query", 'HTML/script `"<script>alert(1)</script><img src=x onerror=alert(1)>"`', "POST /v1/search",
         200, _search({"query": "<script>alert(1)</script><img src=x onerror=alert(1)>"}),
         answer="不知道 with the closest passages; the markup comes back as JSON text (the chat page renders "
                "answers with textContent)",
         check=_unanswered("<script>alert(1)</script><img src=x onerror=alert(1)>")),
    Case("top-k-zero", "`top_k: 0`", "POST /v1/search", 422, _search({"query": QUESTION, "top_k": 0}), "[1, 100]"),
    Case("top-k-big", "`top_k: 101` (QA_MAX_TOP_K is 100)", "POST /v1/search", 422,
         _search({"query": QUESTION, "top_k": 101}), "[1, 100]"),
    Case("top-k-negative", "`top_k: -3`", "POST /v1/search", 422, _search({"query": QUESTION, "top_k": -3}),
         "[1, 100]"),
    Case("top-k-fraction", "`top_k: 2.5`", "POST /v1/search", 422, _search({"query": QUESTION, "top_k": 2.5}),
         "top_k"),
    Case("top-k-text", '`top_k: "many"`', "POST /v1/search", 422, _search({"query": QUESTION, "top_k": "many"}),
         "top_k"),
    Case("unknown-mode", '`mode: "fuzzy"`', "POST /v1/search", 422, _search({"query": QUESTION, "mode": "fuzzy"}),
         "'hybrid', 'dense' or 'bm25'"),
    Case("unknown-doc-filter", '`doc_ids: ["no-such-doc"]`', "POST /v1/search", 404,
         _search({"query": QUESTION, "doc_ids": ["no-such-doc"]}), "no-such-doc"),
    Case("unknown-field", '`{"query": ..., "topk": 3}` (misspelt field)', "POST /v1/search", 422,
         _search({"query": QUESTION, "topk": 3}), "unknown field"),
    Case("missing-query", "`{}`", "POST /v1/search", 422, _search({}), "query: field required"),
    Case("query-number", '`{"query": 42}`', "POST /v1/search", 422, _search({"query": 42}), "query"),
    # --- bodies -----------------------------------------------------------------------------------------------
    Case("invalid-json", 'invalid JSON `{"query": `', "POST /v1/search", 400, _search_raw(b'{"query": '),
         "invalid JSON"),
    Case("json-array", "a JSON array `[1, 2, 3]`", "POST /v1/search", 422, _search_raw(b"[1, 2, 3]"),
         "JSON object"),
    Case("not-utf8-json", "bytes that are not UTF-8 `ff fe 00 …`", "POST /v1/search", 400,
         _search_raw(b"\xff\xfe\x00garbage"), "not UTF-8"),
    Case("text-plain", "wrong content type `text/plain`", "POST /v1/search", 415,
         _search_raw(QUESTION.encode(), {"content-type": "text/plain"}), "application/json"),
    Case("form-urlencoded", "wrong content type `application/x-www-form-urlencoded`", "POST /v1/search", 415,
         _search_raw(b"query=abc", {"content-type": "application/x-www-form-urlencoded"}), "application/json"),
    Case("no-content-type", "JSON without a Content-Type header", "POST /v1/search", 415,
         _search_raw(json.dumps({"query": QUESTION}).encode(), {}), "no content type"),
    Case("gzip-body", "gzip body (`Content-Encoding: gzip`, 60 kB that inflate to 6 MB)", "POST /v1/search", 415,
         _search_raw(gzip.compress(json.dumps({"query": "古" * 2_000_000}).encode()),
                     {**JSON_HEADERS, "content-encoding": "gzip"}), "compressed"),
    Case("huge-body", "9 MB JSON body (Content-Length over QA_MAX_BODY_BYTES = 8 MB)", "POST /v1/search", 413,
         _search_raw(b'{"query": "' + b"a" * 9_000_000 + b'"}'), "limit of 8000000 bytes"),
    Case("huge-chunked-body", "9 MB body sent chunked, without Content-Length", "POST /v1/search", 413,
         _chunked(9_000_000), "limit of 8000000 bytes"),
    # --- chat -------------------------------------------------------------------------------------------------
    Case("chat-no-user", "chat with only a system message", "POST /v1/chat/completions", 422,
         _chat({"messages": [{"role": "system", "content": "你是助手"}]}), "user message"),
    Case("chat-empty-messages", "chat with `messages: []`", "POST /v1/chat/completions", 422,
         _chat({"messages": []}), "messages"),
    Case("chat-surrogate", "chat message with a lone surrogate", "POST /v1/chat/completions", 422,
         lambda c: c.open.post("/v1/chat/completions", headers=JSON_HEADERS,
                               content=b'{"messages": [{"role": "user", "content": "\\ud800?"}]}'), "surrogate"),
    Case("chat-part-control", "chat content part `{\"type\": \"text\", \"text\": \"\\b古塔区\"}` (a control character)",
         "POST /v1/chat/completions", 422,
         _chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "\b古塔区"}]}]}),
         "control character"),
    Case("chat-long", "chat question of 100,000 characters, `stream: true`", "POST /v1/chat/completions", 422,
         _chat({**_user("古" * 100_000), "stream": True}), "limit is 2000"),
    Case("chat-bad-top-k", "chat `top_k: 0`, `stream: true` (refused before any byte is streamed)",
         "POST /v1/chat/completions", 422, _chat({**_user(QUESTION), "top_k": 0, "stream": True}), "[1, 100]"),
    Case("chat-html", "chat question `<img src=x onerror=alert(1)>古塔区投资`", "POST /v1/chat/completions", 200,
         _chat(_user("<img src=x onerror=alert(1)>古塔区投资")),
         answer="answered from the documents; the reply text does not contain the markup",
         check=lambda r: "<img" not in r.json()["choices"][0]["message"]["content"]),
    # --- uploads ----------------------------------------------------------------------------------------------
    Case("upload-empty", "empty file `empty.txt`", "POST /v1/documents", 422, _upload("empty.txt", b""), "empty"),
    Case("upload-blank", "whitespace-only file", "POST /v1/documents", 422, _upload("blank.txt", b"  \n\n\t "),
         "empty"),
    Case("upload-binary", "binary file (PNG bytes) named `photo.txt`", "POST /v1/documents", 422,
         _upload("photo.txt", PNG), "looks like an image"),
    Case("upload-undecodable", "undecodable bytes (`ff` × 500) named `bad.txt`", "POST /v1/documents", 422,
         _upload("bad.txt", b"\xff" * 500), "cannot decode"),
    Case("upload-type", "unsupported type `tool.exe`", "POST /v1/documents", 415, _upload("tool.exe", b"MZ\x90"),
         "not accepted"),
    Case("upload-traversal", "path traversal name `../../etc/passwd`", "POST /v1/documents", 415,
         _upload("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"), "not accepted"),
    Case("upload-traversal-txt", "path traversal name `../../etc/passwd.txt`", "POST /v1/documents", 201,
         _upload("../../etc/passwd.txt", "路径穿越测试：这个文件名只作为标签使用，不会写到任何路径。".encode()),
         answer="added; the name is only a label: `source` is `passwd.txt`, nothing is written outside the index",
         check=_label_only("passwd.txt")),
    Case("upload-traversal-backslash", "Windows path name `..\\..\\Windows\\win.ini.md`", "POST /v1/documents", 201,
         _upload("..\\..\\Windows\\win.ini.md", "反斜杠路径测试：文件名只作为标签。".encode()),
         answer="added; `source` is `win.ini.md`", check=_label_only("win.ini.md")),
    Case("upload-json-traversal", 'JSON upload with `filename: "../../etc/shadow"`', "POST /v1/documents", 201,
         lambda c: c.open.post("/v1/documents", json={"text": "标签测试：JSON上传的文件名只是标签。",
                                                       "filename": "../../etc/shadow"}),
         answer="added; `source` is `shadow`", check=_label_only("shadow")),
    Case("upload-too-big", "6 MB text file (over QA_MAX_UPLOAD_BYTES = 5 MB, under the body limit)",
         "POST /v1/documents", 413, _upload("big.txt", "古塔区。".encode() * 500_000), "upload limit"),
    Case("upload-50mb", "50 MB of repeated text as a file (zip-bomb-like)", "POST /v1/documents", 413,
         _upload("bomb.txt", HUGE_TEXT.encode()), "limit of 8000000 bytes"),
    Case("upload-50mb-json", "50 MB of repeated text as JSON `{\"text\": ...}`", "POST /v1/documents", 413,
         lambda c: c.open.post("/v1/documents", json={"text": HUGE_TEXT}), "limit of 8000000 bytes"),
    Case("upload-duplicate", "the same document uploaded twice", "POST /v1/documents", 200, _duplicate,
         answer="`created: false`, the existing document; nothing changes", check=_not_created),
    Case("upload-no-file", "multipart form without a `file` field", "POST /v1/documents", 422,
         lambda c: c.open.post("/v1/documents", data={"title": "无文件"}, files={"other": ("a.txt", b"x")}),
         "field 'file'"),
    Case("upload-two-files", "multipart form with two files", "POST /v1/documents", 400,
         lambda c: c.open.post("/v1/documents", files=[("file", ("a.txt", "甲".encode())),
                                                       ("file", ("b.txt", "乙".encode()))]), "Too many files"),
    Case("upload-control-title", "JSON upload with a control character in `title`", "POST /v1/documents", 422,
         lambda c: c.open.post("/v1/documents", json={"text": "正文。", "title": "标题\x1b[31m"}),
         "control character"),
    Case("upload-text-plain", "upload as `text/plain` body", "POST /v1/documents", 415,
         lambda c: c.open.post("/v1/documents", content="正文".encode(), headers={"content-type": "text/plain"}),
         "multipart/form-data"),
    Case("upload-read-only", "upload to a server with QA_READ_ONLY=true", "POST /v1/documents", 403,
         _upload("note.txt", "只读测试。".encode(), client="read_only"), "read-only"),
    # --- documents and routes ---------------------------------------------------------------------------------
    Case("delete-unknown", "delete of an unknown id `no-such-doc`", "DELETE /v1/documents/no-such-doc", 404,
         lambda c: c.open.delete("/v1/documents/no-such-doc"), "unknown document id"),
    Case("get-unknown", "get of an unknown id `%00`", "GET /v1/documents/%00", 404,
         lambda c: c.open.get("/v1/documents/%00"), "unknown document id"),
    Case("delete-read-only", "delete on a server with QA_READ_ONLY=true", "DELETE /v1/documents/{id}", 403,
         lambda c: c.read_only.delete("/v1/documents/" + c.read_only.get("/v1/documents").json()["documents"][0]["id"]),
         "read-only"),
    Case("unknown-route", "unknown route", "GET /v1/nothing", 404, lambda c: c.open.get("/v1/nothing"), "no route"),
    Case("wrong-method", "wrong method", "GET /v1/search", 405, lambda c: c.open.get("/v1/search"),
         "use POST", check=lambda r: r.headers["allow"] == "POST"),
    Case("no-key", "no API key (server has QA_API_KEY)", "POST /v1/search", 401,
         lambda c: c.keyed.post("/v1/search", json={"query": QUESTION}), "API key"),
    Case("wrong-key", "wrong API key", "GET /v1/documents", 401,
         lambda c: c.keyed.get("/v1/documents", headers={"Authorization": "Bearer guess"}), "API key"),
    Case("bad-request-id", "`X-Request-ID: <script>` (unsafe id)", "GET /health", 200,
         lambda c: c.open.get("/health", headers={"X-Request-ID": "<script>"}),
         answer="served; the unsafe id is replaced by a generated one in the `X-Request-ID` response header",
         check=lambda r: r.headers["x-request-id"] != "<script>" and len(r.headers["x-request-id"]) == 32),
]


@pytest.fixture(scope="module")
def clients(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    root = tmp_path_factory.mktemp("bad-inputs")
    for name in ("open", "keyed", "read_only"):
        shutil.copytree(base_index, root / name)
    with TestClient(create_app(make_settings(root / "open"))) as open_client, \
            TestClient(create_app(make_settings(root / "keyed", api_key=API_KEY))) as keyed, \
            TestClient(create_app(make_settings(root / "read_only", read_only=True))) as read_only:
        yield Clients(open_client, keyed, read_only)
    # Nothing an upload named was written outside the index folders.
    assert not (root / "etc").exists() and not (root.parent / "etc").exists()


_observed: dict[str, tuple[int, str]] = {}


def _run(case: Case, clients: Clients) -> tuple[int, str]:
    response = case.send(clients)
    assert response.status_code == case.status, f"{case.key}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"] and body.get("type"), response.text[:500]
        assert case.phrase in body["detail"], f"{case.key}: {body['detail']!r} lacks {case.phrase!r}"
        message = body["detail"]
    else:
        assert case.answer, f"{case.key}: a 2xx case needs `answer`"
        message = case.answer
    if case.check:
        assert case.check(response) is not False, f"{case.key}: check failed: {response.text[:500]}"
    _observed[case.key] = (response.status_code, message)
    return _observed[case.key]


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_bad_input(case: Case, clients: Clients):
    _run(case, clients)


def test_service_stays_up(clients: Clients):
    for case in CASES:
        if case.key not in _observed:
            _run(case, clients)
    health = clients.open.get("/health")
    assert health.status_code == 200 and health.json()["index_loaded"] is True
    search = clients.open.post("/v1/search", json={"query": QUESTION})
    assert search.status_code == 200 and search.json()["hits"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    lines = ["| # | input | request | status | answer |", "|---|---|---|---|---|"]
    for number, case in enumerate(CASES, start=1):
        status, message = _observed[case.key]
        shown = message if case.status < 400 else f"`{message}`".replace("``", "`")
        lines.append(f"| {number} | {_cell(case.what)} | `{case.request}` | {status} | {_cell(shown)} |")
    return "\n".join(lines) + "\n"


_BEGIN, _END = "<!-- begin generated table -->\n", "<!-- end generated table -->\n"


def test_doc_matches_observed_answers(clients: Clients):
    for case in CASES:
        if case.key not in _observed:
            _run(case, clients)
    table = render_table()
    text = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    if os.environ.get("ZHQA_WRITE_BAD_INPUTS") == "1":
        assert _BEGIN in text and _END in text, f"{DOC_PATH} needs the generated-table markers"
        head, rest = text.split(_BEGIN, 1)
        _, tail = rest.split(_END, 1)
        DOC_PATH.write_text(head + _BEGIN + table + _END + tail, encoding="utf-8")
        return
    assert _BEGIN + table + _END in text, (
        f"{DOC_PATH} is out of date with what the server answers; regenerate it with "
        "ZHQA_WRITE_BAD_INPUTS=1 .venv/bin/python -m pytest tests/reliability/test_bad_inputs.py")
