"""A throw-away index folder for `qa eval --corpus` and BEIR runs that still reuses embeddings between runs.

The index is built in a temporary folder and removed afterwards, but its embedding cache (`embeddings.sqlite`, keyed
by model name and passage text, see `qa.index.versions.open_cache`) is a symbolic link to a persistent cache file,
by default in the user's cache folder (`$XDG_CACHE_HOME/zhqa`, else `~/.cache/zhqa`). A second run over the same
corpus with the same model therefore embeds nothing. SQLite follows the link, so its journal files sit beside the
real file and concurrent runs share it safely.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qa.evaluate.questions import EvalInputError
from qa.index.versions import open_cache

CACHE_ENV = "XDG_CACHE_HOME"


def default_cache_dir() -> Path:
    """The folder of the persistent evaluation embedding cache: `$XDG_CACHE_HOME/zhqa`, else `~/.cache/zhqa`."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "zhqa"


def check_corpus(folder: Path) -> None:
    """Raise EvalInputError (one sentence) unless `folder` is a folder with at least one non-hidden file."""
    if not folder.exists():
        raise EvalInputError(f"corpus folder {folder} does not exist")
    if not folder.is_dir():
        raise EvalInputError(f"corpus {folder} is not a folder; give the folder that holds the documents")
    if not any(p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
               for p in folder.rglob("*")):
        raise EvalInputError(f"corpus folder {folder} is empty; it needs the documents the questions are about")


@contextmanager
def scratch_index_dir(cache_dir: Path | None, warn: Callable[[str], None]) -> Iterator[Path]:
    """Yield an empty temporary index folder whose embedding cache is the one in `cache_dir` (None: no reuse).

    The folder and everything in it are removed on exit; the cache file stays. When the cache cannot be used
    (folder not writable, no symbolic links on this system) `warn` is told and the run goes on without reuse.
    """
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        index_dir = Path(tmp) / "index"
        index_dir.mkdir()
        if cache_dir is not None:
            try:
                cache = open_cache(cache_dir)  # creates the file, or moves an unreadable one aside
                cache.close()
                (index_dir / cache.path.name).symlink_to(cache.path.resolve())
            except (OSError, sqlite3.Error) as e:
                warn(f"cannot use the embedding cache in {cache_dir} ({e}); embedding everything afresh")
        yield index_dir
