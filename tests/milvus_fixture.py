"""Starts (or reuses) a milvus-lite server on 127.0.0.1 for tests. No pytest here: any fixture can call it.

    uri = ensure_milvus_server()          # "http://127.0.0.1:19530"

A server already answering on the port is reused as it is. Otherwise `scripts/milvus_lite_server.py` is started
with a database in a fresh temporary folder, and stopped (and the folder removed) when the Python process exits;
if that process is killed before its atexit hooks run, the server notices within a second and stops by itself.
The process that started a server stops it at its exit even if another process reuses it: concurrent test runs
should use different ports.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "milvus_lite_server.py"
_started: dict[int, subprocess.Popen] = {}


def _answers(uri: str) -> bool:
    """True when a Milvus server answers a request at ``uri`` (a bare open port is not enough)."""
    from pymilvus import MilvusClient

    # pymilvus logs every failed RPC with a traceback: silence it while polling a server that may not be up yet.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        client = MilvusClient(uri=uri, timeout=2)
        try:
            client.list_collections(timeout=2)
            return True
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means: not (yet) a Milvus server
        return False
    finally:
        logging.disable(previous)


def _stop(process: subprocess.Popen, folder: Path) -> None:
    if process.poll() is None:
        process.terminate()  # the script stops the milvus binary on SIGTERM
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    shutil.rmtree(folder, ignore_errors=True)


def ensure_milvus_server(port: int = 19530, timeout: float = 60.0) -> str:
    """Returns the URI of a Milvus server on 127.0.0.1:``port``, starting milvus-lite there if none answers.

    Raises:
        RuntimeError: if the server exits or does not answer within ``timeout`` seconds; the message holds the
            end of its log.
    """
    uri = f"http://127.0.0.1:{port}"
    if _answers(uri):
        return uri
    if port in _started and _started[port].poll() is None:  # ours, still starting: wait again below
        process = _started[port]
        log_path = Path(process.args[3]).parent / "server.log"
    else:
        folder = Path(tempfile.mkdtemp(prefix="zhqa-milvus-"))
        log_path = folder / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(SERVER_SCRIPT), "--db", str(folder / "milvus.db"), "--port", str(port),
                 "--parent-pid", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        _started[port] = process
        atexit.register(_stop, process, folder)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(uri):
            return uri
        if process.poll() is not None:
            # Another process may have won the race for the port; its server is as good as ours.
            if _answers(uri):
                return uri
            break
        time.sleep(0.2)
    log_tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    state = f"exited with code {process.returncode}" if process.poll() is not None else f"not ready after {timeout:.0f} s"
    raise RuntimeError(f"milvus-lite server on {uri} {state}; log:\n{log_tail}")
