"""Serves a milvus-lite 2.5 database over gRPC on 127.0.0.1 until SIGTERM or SIGINT.

    python scripts/milvus_lite_server.py --db /tmp/zhqa_milvus/milvus.db --port 19530

Clients then connect with ``MilvusStore("http://127.0.0.1:19530", ...)``. Needs the ``milvus`` extra
(milvus-lite==2.5.1, which imports pkg_resources, hence setuptools<81).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="database file; name must match [A-Za-z0-9._-]{1,36}")
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--parent-pid", type=int, help="also stop when this process is gone (for test helpers)")
    args = parser.parse_args(argv)

    with warnings.catch_warnings():  # milvus-lite 2.5.1 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from milvus_lite.server import Server  # imported here so --help works without the extra

    # Server.stop() only releases a file lock, which the binary watches in socket mode only; in TCP mode it
    # must be told to exit: signals just end the loop below, which then terminates the binary. Handlers go in
    # before the start so that an early SIGTERM cannot leave the binary running alone.
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())

    db = Path(args.db).absolute()
    db.parent.mkdir(parents=True, exist_ok=True)
    server = Server(str(db), address=f"127.0.0.1:{args.port}")
    if not server.init() or not server.start():
        print(f"milvus-lite failed to start on 127.0.0.1:{args.port} with {db}", file=sys.stderr)
        return 1
    print(f"milvus-lite serving {db} on 127.0.0.1:{args.port}", flush=True)
    process: subprocess.Popen = server._p  # the only handle to the binary
    while not done.wait(0.5):
        if args.parent_pid and not _alive(args.parent_pid):  # a killed test run must not leave a server behind
            break
        if process.poll() is not None:  # the binary died on its own: report it instead of hanging
            print(f"milvus-lite exited with code {process.returncode}", file=sys.stderr)
            server.stop()
            return 1
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
