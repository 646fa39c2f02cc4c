"""Who may change an index folder, across processes: one writer at a time, and `qa index` never beside a server.

Lock files in the index folder, all `flock` locks the kernel drops when their process dies (so a `kill -9` never
leaves the folder locked):

- ``write.lock``, exclusive, held while a process writes a new version. Every serving process and `qa index` take
  it around a change; a second writer waits for it (up to a timeout) and then gets `IndexBusyError`.
- ``serve.lock``, shared, held by every serving process (each `qa serve` worker) for its lifetime. `qa index` takes
  it exclusively for its run, so it is refused while a server serves the folder, and a server that starts meanwhile
  waits for it to finish.
- ``embed.lock``, exclusive, held by the one process that embeds deferred passages in the background; the other
  workers of a `qa serve --workers N` leave the embedding to it and pick up the versions it saves.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Self

from qa.errors import IndexBusyError, IndexGoneError, IndexWriteError

WRITE_LOCK = "write.lock"
SERVE_LOCK = "serve.lock"
EMBED_LOCK = "embed.lock"
_POLL_S = 0.05

logger = logging.getLogger(__name__)


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote into the file, for messages ("" when unknown)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="ignore").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not renamed away or deleted meanwhile)."""
    try:
        here = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


class _FileLock:
    """One `flock` on a file of the index folder: open it, try the lock without waiting, release it."""

    name = ""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self._fd: int | None = None

    def _try(self, mode: int, create: bool = True) -> int | None:
        """The lock file's descriptor, locked in `mode` (LOCK_EX/LOCK_SH), or None (closed) when another holds it.

        `create`: make the index folder (and its parents) when missing; otherwise a missing folder is IndexGoneError.

        Raises:
            IndexWriteError: the lock file cannot be made (the folder is read-only, missing or a file).
            IndexGoneError: the folder is missing and `create` is false.
        """
        try:
            if create:
                self.index_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.index_dir / self.name, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError as e:
            if create:
                raise IndexWriteError.from_error(self.index_dir, e) from e
            raise IndexGoneError(f"the index folder {self.index_dir} no longer exists (deleted); nothing was "
                                 "written") from e
        except OSError as e:
            raise IndexWriteError.from_error(self.index_dir, e) from e
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __exit__(self, *exc) -> None:
        self.release()


class WriteLock(_FileLock):
    """``with WriteLock(index_dir, timeout_s):`` the one writer of `index_dir` among all processes.

    `create=False` is for a folder that only its owner makes (a knowledge base's): a missing folder is not made
    again, and one deleted while this lock was awaited (renamed away by the deleting process, which held the lock)
    is noticed on entry.

    Raises (on entry):
        IndexBusyError: another process held it for `timeout_s` seconds; the message names the folder and its pid.
        IndexWriteError: the lock file cannot be made (the folder is read-only, missing or a file).
        IndexGoneError: with `create=False`, the folder is gone.
    """

    name = WRITE_LOCK

    def __init__(self, index_dir: Path, timeout_s: float = 30.0, create: bool = True):
        if timeout_s < 0:
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
        super().__init__(index_dir)
        self.timeout_s = timeout_s
        self.create = create

    def __enter__(self) -> Self:
        deadline = time.monotonic() + self.timeout_s
        while (fd := self._try(fcntl.LOCK_EX, self.create)) is None:
            if time.monotonic() >= deadline:
                with open(self.index_dir / self.name, "rb") as f:
                    holder = _holder(f.fileno())
                raise IndexBusyError(
                    f"another process{holder} is changing the index in {self.index_dir}; waited "
                    f"{self.timeout_s:g} s for it to finish. Try again when it is done")
            time.sleep(_POLL_S)
        if not self.create and not _still_at(fd, self.index_dir / self.name):
            os.close(fd)
            raise IndexGoneError(f"the index folder {self.index_dir} was deleted while this change waited for it; "
                                 "nothing was written")
        try:  # the holder's pid, only used in messages
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        except OSError:
            pass
        self._fd = fd
        return self


class ServeLock(_FileLock):
    """The shared lock a serving process holds on its index folder for as long as it serves it."""

    name = SERVE_LOCK

    def hold(self) -> None:
        """Take the shared lock, waiting while a `qa index` run holds the folder (logged once)."""
        if self._fd is not None:
            return
        fd = self._try(fcntl.LOCK_SH)
        if fd is None:
            logger.warning("waiting for `qa index` to finish with %s before serving it", self.index_dir)
            fd = os.open(self.index_dir / self.name, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_SH)
        self._fd = fd


class NotServed(_FileLock):
    """``with NotServed(index_dir):`` exclusive use of a folder no server serves (what `qa index` needs).

    Raises (on entry):
        IndexBusyError: a serving process holds the folder; the message says how to add documents instead.
    """

    name = SERVE_LOCK

    def __enter__(self) -> Self:
        self._fd = self._try(fcntl.LOCK_EX)
        if self._fd is None:
            raise IndexBusyError(
                f"a `qa serve` process serves the index in {self.index_dir}: add documents through its API "
                "(POST /v1/documents) or stop it, then run `qa index` again")
        return self


class EmbedLock(_FileLock):
    """The exclusive lock of the one process that embeds deferred passages (taken without waiting)."""

    name = EMBED_LOCK

    def try_acquire(self) -> bool:
        """True when this process holds it now (or already did); False when another process does."""
        if self._fd is None:
            self._fd = self._try(fcntl.LOCK_EX)
        return self._fd is not None
