"""A non-editable install is complete: the wheel carries the code, the chat page, the user dictionary and the sample
corpus, and `qa ask` answers from another directory with the bundled model, in a fresh venv without torch.

This is what the Dockerfile does (build the wheel, install it, `qa index`), so it checks the image's steps too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of this checkout (setuptools writes build/ and *.egg-info beside the
    sources, and the tree is left as it was)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("qa", "embeddings", "api"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", out, source, cwd=out)
    (found,) = out.glob("zhqa-*.whl")
    return found


def test_the_wheel_holds_the_package_data(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    corpus = sorted(n for n in names if n.startswith("qa/resources/corpus/"))
    assert [Path(n).name for n in corpus] == sorted(p.name for p in (ROOT / "qa/resources/corpus").iterdir())
    assert {"api/static/index.html", "qa/ingest/reader.py"} <= names
    assert "qa/resources/userdict.txt" not in names  # the vocabulary is learned from the indexed documents
    assert not any(n.startswith(("tests/", "bench/", "data/")) for n in names)


@pytest.mark.slow
def test_a_wheel_install_answers_from_another_directory(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # The wheel with its declared dependencies only (pip's cache makes this quick after the project's own install).
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    installed = run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path).lower()
    assert "zhqa==" in installed and "torch==" not in installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "PYTHON"))}
    out = run(env_dir / "bin" / "qa", "ask", "古塔区固定资产投资完成多少", cwd=elsewhere, env=env)
    assert "10.4亿元" in out.splitlines()[0], out[:500]
    assert (elsewhere / ".qa_index" / "CURRENT").is_file()  # the index went where the user is, not into the venv
