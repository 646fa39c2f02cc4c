"""A small run of bench/load_test.py in CI: 300 requests from 8 clients (searches and streamed chats) against a real
uvicorn server on 127.0.0.1 while a writer uploads and deletes documents; every response is checked (status,
shape, passage text equal to the document's text at the hit's offsets, streams ending in [DONE])."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

from api.main import create_app
from tests.support import ROOT, live_server, make_settings


def _load_test_module():
    spec = importlib.util.spec_from_file_location("zhqa_load_test", ROOT / "bench" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_concurrent_reads_during_uploads_and_deletes(index_copy):
    load_test = _load_test_module()
    app = create_app(make_settings(index_copy))
    with live_server(app) as url:
        summary = asyncio.run(load_test.run_load(url, requests=300, clients=8, chat_share=0.3, max_writes=200,
                                                 max_seconds=120))
    assert summary["requests"] == 300 and not summary["timed_out"]
    assert summary["errors"] == 0, summary["examples"]
    assert summary["writer_cycles"] >= 1 and summary["writer_errors"] == 0
    assert summary["search"]["n"] > 0 and summary["chat"]["n"] > 0
    assert summary["hits_checked"] > 300
