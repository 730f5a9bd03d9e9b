"""Writer locks of a store: one process at a time per kind of write.

Beside a local store the lock is an advisory ``flock`` on a small file
(``.<store name>.<purpose>.lock``) holding who took it (host, pid, since, command), so
that a refusal names the holder. The operating system releases it when the holder
exits, however it exits (``kill -9`` included): no stale lock is left behind.

Beside a store given as an S3 URL the lock is a lease: an object of the same name,
created only if absent (``If-None-Match: *``, S3's conditional write) and renewed by
its holder every third of :data:`LEASE_S` (``If-Match`` on its ETag, so a renewal
never overwrites another holder). A holder that stops renewing (killed, frozen) loses
it :data:`LEASE_S` after its last renewal, by the server's clock; the next writer then
takes it over with one conditional write, so two writers never both win. A holder
that finds its lease lost says so when its block ends.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from xrdmap.errors import StoreBusyError, StoreError

#: Ingestion and prediction: whoever changes the store's arrays.
WRITE = "write"
#: Appending expert labels.
LABELS = "labels"
#: Seconds a URL store's lease outlives its holder's last renewal.
LEASE_S = 30.0


def lock_path(store: str, purpose: str) -> Path | None:
    """The lock file of ``purpose`` for a local store; None for a URL store."""
    if "://" in str(store):
        return None
    path = Path(store)
    return path.parent / f".{path.name}.{purpose}.lock"


def _holder_record() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
    }


def _describe(text: str | bytes) -> str:
    try:
        h = json.loads(text)
        return f"pid {h['pid']} on {h['host']} since {h['since']} ({h['command']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _holder(path: Path) -> str:
    try:
        return _describe(path.read_text())
    except OSError:
        return "another process"


def _busy(store: str, purpose: str, holder: str, release: str) -> StoreBusyError:
    return StoreBusyError(
        f"{store}: busy: {purpose} lock held by {holder}; wait until it ends ({release})"
    )


@contextmanager
def store_lock(store: str, purpose: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the ``purpose`` lock of ``store`` inside the block.

    Parameters
    ----------
    store : str
        The store: a local folder or an S3 URL (other URL schemes are refused).
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
        with _S3Lease(store, purpose).held(wait_s):
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
                    raise _busy(
                        store, purpose, _holder(path), "a crashed holder releases it at once"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder_record()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


class _S3Lease:
    """The ``purpose`` lease of an S3 store (see the module's text)."""

    def __init__(self, store: str, purpose: str) -> None:
        import fsspec

        self.store, self.purpose = store, purpose
        self.fs, path = fsspec.core.url_to_fs(store)
        if not hasattr(self.fs, "call_s3"):
            raise StoreError(
                f"{store}: no write lock for {self.fs.protocol} URLs: give a local folder "
                "or an S3 URL (s3://bucket/name.zarr)"
            )
        self.bucket, _, prefix = path.strip("/").partition("/")
        parent, _, name = prefix.rpartition("/")
        self.key = f"{parent}/" * bool(parent) + f".{name or 'zarr'}.{purpose}.lock"
        self.body = json.dumps({**_holder_record(), "lease_s": LEASE_S}).encode()
        self.etag = ""
        self.lost = threading.Event()
        self._stop = threading.Event()

    def _put(self, **condition: str) -> str:
        reply = self.fs.call_s3(
            "put_object", Bucket=self.bucket, Key=self.key, Body=self.body, **condition
        )
        return reply["ETag"]

    def _try_take(self) -> str | None:
        """Take the lease if free or expired; else the holder's description."""
        try:
            self.etag = self._put(IfNoneMatch="*")
            return None
        except FileExistsError:
            pass
        try:
            head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self.key)
            text = self.fs.cat_file(f"{self.bucket}/{self.key}")
        except FileNotFoundError:
            return "another process"  # released in between: try again
        try:
            lease_s = float(json.loads(text).get("lease_s", LEASE_S))
        except (ValueError, TypeError, AttributeError):
            lease_s = LEASE_S
        now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
        if (now - head["LastModified"]).total_seconds() <= lease_s:
            return _describe(text)
        try:  # expired: take it over, unless another writer does first
            self.etag = self._put(IfMatch=head["ETag"])
            return None
        except OSError:
            return _describe(text)

    def _renew(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(LEASE_S / 3):
            try:
                self.etag = self._put(IfMatch=self.etag)
                last = time.monotonic()
            except OSError as exc:
                # 412 (another ETag: taken over) or 404 (removed); else the network
                taken = isinstance(exc, FileNotFoundError) or exc.errno == errno.EINVAL
                if taken or time.monotonic() - last > LEASE_S:
                    self.lost.set()
                    return

    @contextmanager
    def held(self, wait_s: float) -> Iterator[None]:
        deadline = time.monotonic() + wait_s
        while (holder := self._try_take()) is not None:
            if time.monotonic() >= deadline:
                raise _busy(
                    self.store,
                    self.purpose,
                    holder,
                    f"a crashed holder's lease ends {LEASE_S:g} s after its last renewal",
                )
            time.sleep(0.2)
        renewer = threading.Thread(target=self._renew, name="xrdmap-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            self._stop.set()
            renewer.join()
            if not self.lost.is_set():
                with suppress(OSError):  # only our own lease: IfMatch
                    self.fs.call_s3(
                        "delete_object", Bucket=self.bucket, Key=self.key, IfMatch=self.etag
                    )
        if self.lost.is_set():
            raise StoreBusyError(
                f"{self.store}: the {self.purpose} lease was lost (not renewed for "
                f"{LEASE_S:g} s, or taken by another writer): check what this run wrote"
            )
