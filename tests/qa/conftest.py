"""Fixtures for the retrieval-core tests (store, retriever, answer, evaluate, CLI).

Everything except the tests marked `slow` runs on the tiny hand-written corpus in `tests/data/tiny` with the
weight-free `HashingEmbedder`, so it needs no model and takes well under a second per index.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from embeddings.hashing import HashingEmbedder
from qa.config import SAMPLE_CORPUS
from qa.index.build import build_index
from qa.index.segments import IndexData
from qa.ingest.reader import load_documents
from qa.search.retriever import HybridRetriever
from qa.types import Document, Passage

TESTS_DIR = Path(__file__).resolve().parent.parent


# --- files ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The tiny Chinese corpus: three short documents with outlines, figures, dates and an `X` placeholder."""
    return TESTS_DIR / "data" / "tiny"


@pytest.fixture(scope="session")
def tiny_eval_path() -> Path:
    """Dev-set style questions about the tiny corpus (5 answerable, 2 unanswerable)."""
    return TESTS_DIR / "data" / "tiny_eval.jsonl"


@pytest.fixture(scope="session")
def sample_corpus_dir() -> Path:
    return SAMPLE_CORPUS


@pytest.fixture(scope="session")
def read_exact() -> Callable[[Path], str]:
    """Reads a file as the ingester should see it: UTF-8, no newline translation (what offsets point into)."""

    def read(path: Path) -> str:
        return path.read_bytes().decode("utf-8")

    return read


# --- in-memory tiny index ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def tiny_docs(tiny_dir: Path) -> tuple[Document, ...]:
    report = load_documents([tiny_dir])
    assert len(report.documents) == 3, "the tiny corpus should give three documents"
    return report.documents


@pytest.fixture(scope="session")
def doc_by_file(tiny_docs) -> dict[str, Document]:
    """Tiny documents by file name (`a_chengguan_speech.txt`, ...)."""
    return {Path(d.source).name: d for d in tiny_docs}


@pytest.fixture(scope="session")
def tiny_index(tiny_docs, embedder) -> IndexData:
    """The tiny corpus indexed in memory (shared: tests must not change it)."""
    return build_index(tiny_docs, embedder)


@pytest.fixture(scope="session")
def retriever(tiny_index, embedder) -> HybridRetriever:
    return HybridRetriever(tiny_index, embedder)


@pytest.fixture(scope="session")
def passage_with(tiny_index) -> Callable[[str], Passage]:
    """The one indexed passage whose text contains a given string."""

    def find(needle: str) -> Passage:
        found = [p for p in tiny_index.passages if needle in p.text]
        assert len(found) == 1, f"expected exactly one passage containing {needle!r}, got {len(found)}"
        return found[0]

    return find


# --- CLI --------------------------------------------------------------------------------------------------------


def _clean_qa_env(mp: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("QA_"):
            mp.delenv(name, raising=False)


@pytest.fixture
def qa_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray QA_* settings, the hashing embedder, and a working folder without a `.env` file."""
    _clean_qa_env(monkeypatch)
    monkeypatch.setenv("QA_EMBEDDER", "hashing")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Runs `qa.cli.main(argv)` in-process; returns (exit code, stdout, stderr) of that call only."""
    from qa.cli import main

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def tiny_cli_index(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Path:
    """An index folder built by `qa index tests/data/tiny` with the hashing embedder (shared, read-only)."""
    from qa.cli import main

    index_dir = tmp_path_factory.mktemp("tiny_cli_index")
    workdir = tmp_path_factory.mktemp("tiny_cli_cwd")
    with pytest.MonkeyPatch.context() as mp:
        _clean_qa_env(mp)
        mp.setenv("QA_EMBEDDER", "hashing")
        mp.chdir(workdir)
        code = main(["--index-dir", str(index_dir), "index", "--quiet", str(tiny_dir)])
    assert code == 0
    return index_dir


@pytest.fixture(scope="session")
def real_model_index(tmp_path_factory: pytest.TempPathFactory, sample_corpus_dir: Path) -> Path:
    """The sample corpus indexed by the CLI with the bundled real model (slow tests only; ~15-30 s)."""
    from qa.cli import main

    index_dir = tmp_path_factory.mktemp("real_model_index")
    workdir = tmp_path_factory.mktemp("real_model_cwd")
    with pytest.MonkeyPatch.context() as mp:
        _clean_qa_env(mp)
        mp.chdir(workdir)
        code = main(["--index-dir", str(index_dir), "index", "--quiet", str(sample_corpus_dir)])
    assert code == 0
    return index_dir
