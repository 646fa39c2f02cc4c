"""Tests for the weight-free HashingEmbedder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.base import Embedder
from embeddings.hashing import HashingEmbedder


def test_shape_dtype_and_unit_norm() -> None:
    emb = HashingEmbedder(dim=128)
    vecs = emb.encode_documents(["固定资产投资完成10.4亿元", "hello world", "", "a"])
    assert vecs.shape == (4, 128)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)


def test_empty_list_gives_zero_rows() -> None:
    emb = HashingEmbedder(dim=32)
    assert emb.encode_queries([]).shape == (0, 32)
    assert emb.encode_documents([]).dtype == np.float32


def test_deterministic_across_instances_and_processes() -> None:
    text = "古塔区固定资产投资完成多少"
    a = HashingEmbedder(64).encode_queries([text])
    b = HashingEmbedder(64).encode_queries([text])
    np.testing.assert_array_equal(a, b)
    # A fresh interpreter has a different str-hash salt; vectors must not change.
    code = (
        "import sys; from embeddings.hashing import HashingEmbedder;"
        f"sys.stdout.write(HashingEmbedder(64).encode_queries([{text!r}]).tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert bytes.fromhex(out.stdout) == a.tobytes()


def test_similar_texts_score_higher() -> None:
    emb = HashingEmbedder()
    q = emb.encode_queries(["固定资产投资完成多少"])[0]
    docs = emb.encode_documents(
        ["固定资产投资完成10.4亿元，增速高于全市平均水平", "今天天气晴朗，适合去公园散步。"]
    )
    scores = docs @ q
    assert scores[0] > scores[1]


def test_name_and_protocol() -> None:
    emb = HashingEmbedder(dim=256)
    assert emb.name == "hashing-256"
    assert isinstance(emb, Embedder)


@pytest.mark.parametrize("dim", [0, -1, 1 << 20])
def test_bad_dim_rejected(dim: int) -> None:
    with pytest.raises(ValueError, match=rf"dim must be \[1, 65536\], got {dim}"):
        HashingEmbedder(dim=dim)


@pytest.mark.parametrize("dim", [2.5, True, "256"])
def test_non_int_dim_rejected(dim: object) -> None:
    with pytest.raises(TypeError, match="dim must be an int"):
        HashingEmbedder(dim=dim)  # type: ignore[arg-type]


def test_bare_string_rejected() -> None:
    with pytest.raises(TypeError, match="list of str"):
        HashingEmbedder().encode_queries("not a list")  # type: ignore[arg-type]
