"""Request ids, JSON-lines logs and Prometheus metrics.

- Every request gets an id: a well-formed incoming `X-Request-ID` is kept, otherwise one is generated. It is sent
  back in the `X-Request-ID` response header and attached to every log record written while the request runs
  (worker threads included: the id lives in a context variable, which the thread pool copies).
- `qa serve` writes its logs as JSON lines (`configure_logging`): time, level, logger, message, request id and the
  structured fields of the access line. Nothing a client sent in a body (questions, document text) or in headers
  (API keys) is ever logged, and the access line records the path without its query string.
- `GET /metrics` answers in the Prometheus text format (prometheus-client): request counts by route template,
  method and status; latency histograms by route template and method; requests in flight; index gauges
  (loaded, documents, passages) read from the live snapshot at scrape time; and the process collector. Each app
  has its own registry, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AccessDep, ApiKeyDep
from api.errors import HTTPError

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it is short and made of safe characters (it is echoed and logged).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("zhqa_request_id", default=None)

access_logger = logging.getLogger("api.access")
logger = logging.getLogger(__name__)

# Labels of requests that matched no route: one value, so unknown paths cannot blow up the metric cardinality.
UNMATCHED = "<unmatched>"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)


def current_request_id() -> str | None:
    """The id of the request being handled in this context (None outside a request)."""
    return _request_id.get()


# --- logging ---------------------------------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                     "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, the record's extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in ("request_id", "color_message") and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO, stream=None) -> logging.Handler:
    """Send the root logger (and uvicorn's) to `stream` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # uvicorn's own access line repeats ours without the request id; ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    # Third-party debug chatter stays out of the service log.
    for noisy in ("jieba", "faiss", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


# --- metrics ---------------------------------------------------------------------------------------------------------


class _IndexCollector(Collector):
    """Index gauges read from the app's live snapshot when scraped."""

    def __init__(self, app: Any):
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        service = getattr(self.app.state, "service", None)
        loaded = bool(service is not None and service.loaded)
        documents = passages = 0
        if loaded:
            data = service.snapshot.data
            documents, passages = len(data.documents), data.passage_count
        yield GaugeMetricFamily("zhqa_index_loaded", "1 when an index is loaded and served, else 0",
                                value=1 if loaded else 0)
        yield GaugeMetricFamily("zhqa_index_documents", "documents in the served index", value=documents)
        yield GaugeMetricFamily("zhqa_index_passages", "passages in the served index", value=passages)
        yield from self._knowledge_bases()
        stats = service.query_encoder_stats() if service is not None else None
        if stats is not None:
            yield CounterMetricFamily("zhqa_query_cache_hits", "questions answered from the question-vector cache",
                                      value=stats.cache_hits)
            yield CounterMetricFamily("zhqa_query_cache_misses", "questions the cache did not hold (encoded)",
                                      value=stats.cache_misses)
            yield CounterMetricFamily("zhqa_query_encoder_batches", "calls of the question encoder",
                                      value=stats.batches)
            yield CounterMetricFamily("zhqa_query_encoder_questions", "questions encoded, over all batches",
                                      value=stats.batched_queries)
            yield GaugeMetricFamily("zhqa_query_cache_entries", "question vectors in the cache",
                                    value=stats.cache_size)


    def _knowledge_bases(self) -> Iterable[GaugeMetricFamily]:
        manager = getattr(self.app.state, "kbs", None)
        if manager is None:
            return
        families = {
            "loaded": GaugeMetricFamily("zhqa_kb_loaded", "1 when the knowledge base is loaded in this process",
                                        labels=["knowledge_base"]),
            "documents": GaugeMetricFamily("zhqa_kb_documents", "documents of a loaded knowledge base",
                                           labels=["knowledge_base"]),
            "passages": GaugeMetricFamily("zhqa_kb_passages", "passages of a loaded knowledge base",
                                          labels=["knowledge_base"]),
            "memory": GaugeMetricFamily("zhqa_kb_memory_bytes", "estimated memory of a loaded knowledge base "
                                        "(what QA_KB_MEMORY_BUDGET_MB is compared with; 0 for default)",
                                        labels=["knowledge_base"]),
        }
        for status in manager.status():
            families["loaded"].add_metric([status.name], 1 if status.loaded else 0)
            if status.documents is not None:
                families["documents"].add_metric([status.name], status.documents)
                families["passages"].add_metric([status.name], status.passages or 0)
                families["memory"].add_metric([status.name], status.memory_bytes)
        yield from families.values()


class Metrics:
    """The app's Prometheus registry and its HTTP metrics."""

    def __init__(self, app: Any):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("zhqa_http_requests", "HTTP requests answered, by route template, method and "
                                "status", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("zhqa_http_request_duration_seconds", "time from request to the last byte of "
                                 "the response, by route template and method", ["route", "method"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("zhqa_http_requests_in_flight", "requests being handled", registry=self.registry)
        self.registry.register(_IndexCollector(app))
        ProcessCollector(registry=self.registry)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for (Prometheus text 0.0.4 by default, or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    if scope.get("path", "").startswith("/static/"):
        return "/static/{path}"
    return UNMATCHED


class RequestContextMiddleware:
    """Outermost middleware: request id, access log line, request metrics.

    It wraps everything else (body size limit, CORS, routing), so refused requests are counted and carry an id too.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = 500 if not response_started else status
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            client = scope.get("client")
            access_logger.info(
                "%s %s %d", method, scope.get("path", ""), status,
                extra={"request_id": request_id, "method": method, "path": scope.get("path", ""), "route": route,
                       "status": status,
                       "duration_ms": round(elapsed * 1000, 2), "client": client[0] if client else None},
            )
            _request_id.reset(token)


router = APIRouter(tags=["observability"], dependencies=[ApiKeyDep])


_TEXT = {"schema": {"type": "string"}}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": _TEXT, "application/openmetrics-text": _TEXT},
                             "description": "Prometheus text exposition format (OpenMetrics when asked for)"}})
def metrics(request: Request, access: AccessDep) -> Response:
    """Prometheus metrics: requests by route/method/status, latency histograms, index and knowledge base sizes,
    process. Only for the admin key (they name every knowledge base)."""
    if not access.admin:
        raise HTTPError(403, "only the admin key (QA_API_KEY) may read the metrics", "forbidden")
    body, content_type = request.app.state.metrics.render(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})
