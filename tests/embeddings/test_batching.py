"""QueryBatcher: questions of concurrent callers encoded together on one worker thread, behind an LRU cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from embeddings import HashingEmbedder, QueryBatcher


class RecordingEmbedder:
    """Hashing vectors, slowed down, recording every encoder call: its texts and the thread it ran on."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None):
        self.inner = HashingEmbedder(dim=64)
        self.name, self.dim = self.inner.name, self.inner.dim
        self.delay_s, self.fail_on = delay_s, fail_on
        self.calls: list[tuple[list[str], int]] = []
        self.document_threads: list[int] = []

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        self.calls.append((list(texts), threading.get_ident()))
        time.sleep(self.delay_s)
        if self.fail_on in texts:
            raise RuntimeError(f"engine failed on {self.fail_on}")
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.document_threads.append(threading.get_ident())
        return self.inner.encode_documents(texts)


def test_vectors_are_those_of_the_wrapped_embedder():
    inner = RecordingEmbedder()
    batcher = QueryBatcher(inner)
    texts = ["古塔区固定资产投资完成多少", "森林防火期从哪天开始", "古塔区固定资产投资完成多少"]
    assert np.array_equal(batcher.encode_queries(texts), inner.inner.encode_queries(texts))
    assert batcher.encode_queries([]).shape == (0, 64)
    assert (batcher.name, batcher.dim) == (inner.name, inner.dim)


def test_concurrent_callers_share_encoder_calls_on_one_thread():
    inner = RecordingEmbedder(delay_s=0.05)
    batcher = QueryBatcher(inner, max_batch=32, cache_size=0)
    questions = [f"第{i}个问题：项目建设进展如何" for i in range(16)]
    results: dict[str, np.ndarray] = {}
    callers: set[int] = set()

    def ask(question: str) -> None:
        callers.add(threading.get_ident())
        results[question] = batcher.encode_queries([question])[0]

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == sorted(questions)
    for question in questions:  # every caller got its own question's vector
        assert np.array_equal(results[question], inner.inner.encode_queries([question])[0])
    assert sum(len(texts) for texts, _ in inner.calls) == 16
    assert len(inner.calls) < 16  # questions that queued while the engine was busy went together
    encoder_threads = {thread for _, thread in inner.calls}
    assert len(encoder_threads) == 1 and not encoder_threads & callers  # never on a request's own thread
    stats = batcher.stats()
    assert (stats.batches, stats.batched_queries) == (len(inner.calls), 16)


def test_batches_are_capped():
    inner = RecordingEmbedder(delay_s=0.05)
    batcher = QueryBatcher(inner, max_batch=3, cache_size=0)
    threads = [threading.Thread(target=batcher.encode_queries, args=([f"问题{i}"],)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert max(len(texts) for texts, _ in inner.calls) <= 3
    assert sum(len(texts) for texts, _ in inner.calls) == 10


def test_a_lone_caller_does_not_wait_for_company():
    batcher = QueryBatcher(RecordingEmbedder(), max_wait_ms=1000, cache_size=0)
    batcher.encode_queries(["预热"])
    started = time.perf_counter()
    batcher.encode_queries(["一个人提问不用等"])
    assert time.perf_counter() - started < 0.5


def test_repeated_questions_come_from_the_cache_least_recently_used_first_out():
    inner = RecordingEmbedder()
    batcher = QueryBatcher(inner, cache_size=2)
    first = batcher.encode_queries(["甲"])
    assert np.array_equal(batcher.encode_queries(["甲"]), first) and len(inner.calls) == 1
    batcher.encode_queries(["乙"])
    batcher.encode_queries(["甲"])  # 甲 is now the most recently used
    batcher.encode_queries(["丙"])  # evicts 乙
    calls = len(inner.calls)
    batcher.encode_queries(["甲"])
    assert len(inner.calls) == calls
    batcher.encode_queries(["乙"])
    assert len(inner.calls) == calls + 1
    stats = batcher.stats()
    assert (stats.cache_hits, stats.cache_misses, stats.cache_size) == (3, 4, 2)


def test_a_cached_vector_cannot_be_changed_by_a_caller():
    batcher = QueryBatcher(RecordingEmbedder())
    batcher.encode_queries(["甲"])[0][:] = 0  # the caller's copy
    assert np.linalg.norm(batcher.encode_queries(["甲"])[0]) == pytest.approx(1.0)


def test_cache_off_encodes_every_time():
    inner = RecordingEmbedder()
    batcher = QueryBatcher(inner, cache_size=0)
    for _ in range(3):
        batcher.encode_queries(["甲"])
    assert len(inner.calls) == 3 and batcher.stats().cache_hits == 0


def test_an_engine_error_reaches_the_caller_and_the_worker_keeps_serving():
    inner = RecordingEmbedder(fail_on="坏问题")
    batcher = QueryBatcher(inner, cache_size=0)
    with pytest.raises(RuntimeError, match="engine failed on 坏问题"):
        batcher.encode_queries(["坏问题"])
    assert batcher.encode_queries(["好问题"]).shape == (1, 64)


def test_passages_are_encoded_on_the_callers_thread():
    inner = RecordingEmbedder()
    batcher = QueryBatcher(inner)
    vectors = batcher.encode_documents(["一段文字", "另一段"])
    assert vectors.shape == (2, 64) and inner.document_threads == [threading.get_ident()] and not inner.calls


@pytest.mark.parametrize(("arguments", "message"), [
    ({"max_batch": 0}, "max_batch"),
    ({"max_wait_ms": -1}, r"max_wait_ms must be in \[0, 1000\]"),
    ({"cache_size": -5}, r"cache_size must be in \[0, 10000000\]"),
])
def test_limits_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        QueryBatcher(RecordingEmbedder(), **arguments)
