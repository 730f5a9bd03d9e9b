"""Writer locks of a store: one process at a time per kind of write.

A lock is an advisory ``flock`` on a small file beside a local store
(``.<store name>.<purpose>.lock``), holding who took it (host, pid, since, command) so
that a refusal names the holder. The operating system releases it when the holder
exits, however it exits (``kill -9`` included): no stale lock is left behind. Stores
given as URLs (S3) have no lock: run one writer at a time there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from xrdmap.errors import StoreBusyError

#: Ingestion and prediction: whoever changes the store's arrays.
WRITE = "write"
#: Appending expert labels.
LABELS = "labels"


def lock_path(store: str, purpose: str) -> Path | None:
    """The lock file of ``purpose`` for a local store; None for a URL store."""
    if "://" in str(store):
        return None
    path = Path(store)
    return path.parent / f".{path.name}.{purpose}.lock"


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on {h['host']} since {h['since']} ({h['command']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def store_lock(store: str, purpose: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the ``purpose`` lock of ``store`` inside the block.

    Parameters
    ----------
    store : str
        The store (a local folder; URL stores are not locked).
    purpose : str
        :data:`WRITE` or :data:`LABELS`: writers of one purpose exclude each other.
    wait_s : float
        How long to wait for the holder to finish before refusing.

    Raises
    ------
    StoreBusyError
        Another process holds the lock; the message names it.
    """
    path = lock_path(store, purpose)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"{store}: busy: {purpose} lock held by {_holder(path)}; "
                        "wait until it ends (a crashed holder releases it at once)"
                    ) from None
                time.sleep(0.05)
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
