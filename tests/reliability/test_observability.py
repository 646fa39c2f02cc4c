"""/metrics (Prometheus text, prometheus-client), request ids, JSON-lines logs of `qa serve`."""

from __future__ import annotations

import io
import json
import logging

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from api.observability import JsonFormatter, RequestIdFilter, configure_logging
from tests.support import start_serve

QUESTION = "古塔区固定资产投资完成多少"


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_and_report_the_index(make_client):
    with make_client() as client:
        doc_id = client.get("/v1/documents").json()["documents"][0]["id"]
        for _ in range(3):
            assert client.post("/v1/search", json={"query": QUESTION}).status_code == 200
        assert client.post("/v1/search", json={"query": ""}).status_code == 422
        assert client.get(f"/v1/documents/{doc_id}").status_code == 200
        assert client.get("/v1/documents/nope").status_code == 404
        assert client.get("/no/such/path/1").status_code == 404
        assert client.get("/no/such/path/2").status_code == 404
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        assert _value(samples, "zhqa_http_requests_total", route="/v1/search", method="POST", status="200") == 3
        assert _value(samples, "zhqa_http_requests_total", route="/v1/search", method="POST", status="422") == 1
        # Path parameters and unknown paths do not create new label values.
        assert _value(samples, "zhqa_http_requests_total", route="/v1/documents/{doc_id}", method="GET",
                      status="200") == 1
        assert _value(samples, "zhqa_http_requests_total", route="/v1/documents/{doc_id}", method="GET",
                      status="404") == 1
        assert _value(samples, "zhqa_http_requests_total", route="<unmatched>", method="GET", status="404") == 2
        assert _value(samples, "zhqa_http_request_duration_seconds_count", route="/v1/search", method="POST") == 4
        assert _value(samples, "zhqa_http_request_duration_seconds_bucket", route="/v1/search", method="POST",
                      le="+Inf") == 4
        assert _value(samples, "zhqa_index_loaded") == 1
        assert _value(samples, "zhqa_index_documents") == 5
        passages = _value(samples, "zhqa_index_passages")
        assert passages == client.get("/health").json()["passages"] > 0
        # The same question three times: encoded once, then answered from the question-vector cache.
        assert _value(samples, "zhqa_query_cache_misses_total") == 1
        assert _value(samples, "zhqa_query_cache_hits_total") == 2
        assert _value(samples, "zhqa_query_encoder_questions_total") == 1
        assert _value(samples, "zhqa_query_encoder_batches_total") == 1
        assert _value(samples, "zhqa_query_cache_entries") == 1
        added = client.post("/v1/documents", json={"text": "指标测试：新增一篇文档后，文档数应当加一。" * 3})
        assert added.status_code == 201
        samples = _samples(client.get("/metrics").text)
        assert _value(samples, "zhqa_index_documents") == 6 and _value(samples, "zhqa_index_passages") > passages
        assert _value(samples, "zhqa_http_requests_total", route="/v1/documents", method="POST", status="201") == 1
        # OpenMetrics when the scraper asks for it.
        om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text") and "# EOF" in om.text


def test_request_id_is_kept_or_generated_and_returned(client):
    kept = client.get("/health", headers={"X-Request-ID": "trace-42.a_b:c"})
    assert kept.headers["x-request-id"] == "trace-42.a_b:c"
    generated = client.post("/v1/search", json={"query": ""})
    assert len(generated.headers["x-request-id"]) == 32
    for unsafe in ("x" * 200, "has space", "semi;colon"):
        assert client.get("/health", headers={"X-Request-ID": unsafe}).headers["x-request-id"] != unsafe
    # Refusals by the middlewares carry one too.
    too_big = client.post("/v1/search", content=b"{}", headers={"content-type": "application/json",
                                                                "content-length": "99999999999"})
    assert too_big.status_code == 413 and too_big.headers["x-request-id"]


def test_json_log_lines_carry_the_request_id(settings, service):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    watched = [logging.getLogger("api.access"), logging.getLogger("api.errors")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        with TestClient(create_app(settings, service=service)) as client:
            client.post("/v1/search", json={"query": QUESTION}, headers={"X-Request-ID": "req-search-1"})
    finally:
        for logger, level in zip(watched, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "api.access" and line.get("request_id") == "req-search-1"]
    assert len(access) == 1
    entry = access[0]
    assert entry["route"] == "/v1/search" and entry["status"] == 200 and entry["method"] == "POST"
    assert entry["duration_ms"] > 0 and entry["level"] == "INFO" and entry["ts"].endswith("Z")
    assert QUESTION not in stream.getvalue()


def test_configure_logging_writes_json_lines():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(stream=stream)
        logging.getLogger("zhqa.test").warning("hello %s", "world", extra={"doc_id": "abc"})
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("uvicorn.access").disabled = False
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["msg"] == "hello world" and line["doc_id"] == "abc" and line["level"] == "WARNING"


def test_qa_serve_logs_json_lines_without_secrets(index_copy, tmp_path):
    key = "serve-secret-key-9f8e7d"
    body_sentence = "保密文件正文：白云镇二〇二五年拨付防汛资金四千六百万元。"
    served = start_serve(index_copy, tmp_path / "serve.log", QA_API_KEY=key)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=served.url, timeout=30) as http:
            added = http.post("/v1/documents", headers={**auth, "X-Request-ID": "upload-1"},
                              files={"file": ("baiyun.txt", (body_sentence * 10).encode())})
            assert added.status_code == 201, added.text
            assert http.post("/v1/search", headers=auth, json={"query": "白云镇防汛资金"}).status_code == 200
            assert http.get("/v1/documents", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
            assert http.get(f"/v1/documents?token={key}", headers=auth).status_code == 200
            metrics = http.get("/metrics", headers=auth)
            assert metrics.status_code == 200 and "zhqa_index_documents 6.0" in metrics.text
            assert http.get("/metrics").status_code == 401
    finally:
        served.stop()
    log = served.log()
    assert key not in log, "the API key leaked into the log"
    assert "白云镇" not in log and "四千六百万" not in log, "document text leaked into the log"
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert entries and len(entries) == len([line for line in log.splitlines() if line.strip()]), log[-2000:]
    upload = [e for e in entries if e.get("request_id") == "upload-1"]
    assert {e["logger"] for e in upload} >= {"api.access", "api.routes.documents"}
    assert any(e.get("route") == "/v1/documents" and e.get("status") == 201 for e in upload)
