"""The write lock of a store on S3 (moto on loopback): a lease by conditional writes.
One writer wins, a refusal names the holder, a living holder keeps its lease past its
term, a killed one loses it after its term, and a holder whose lease was taken says so."""

import threading
import time

import pytest

from xrdmap import locks
from xrdmap.errors import StoreBusyError, StoreError
from xrdmap.locks import WRITE, store_lock


def test_a_killed_holder_keeps_the_store_until_its_lease_ends(s3_server, lock_holder):
    store = f"{s3_server}/bt.zarr"
    with lock_holder(store, lease_s=1.5) as holder:  # killed at the block's end
        time.sleep(2.5)  # past the 1.5 s term: the holder renews it
        busy = rf"bt.zarr: busy: write lock held by pid {holder.pid} on .*lease ends"
        with pytest.raises(StoreBusyError, match=busy), store_lock(store, WRITE):
            pass
    with pytest.raises(StoreBusyError), store_lock(store, WRITE):  # not yet expired
        pass
    start = time.monotonic()
    with store_lock(store, WRITE, wait_s=10):  # taken over once the term has passed
        waited = time.monotonic() - start
    assert 0.2 < waited < 5


def test_of_simultaneous_writers_exactly_one_holds_the_lease(s3_server):
    store = f"{s3_server}/bt.zarr"
    start, release = threading.Barrier(6), threading.Event()
    won, refused = [], []

    def writer() -> None:
        start.wait()
        try:
            with store_lock(store, WRITE):
                won.append(1)
                release.wait(10)
        except StoreBusyError:
            refused.append(1)
        if refused and len(refused) == 5:
            release.set()

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(won), len(refused)) == (1, 5)
    with store_lock(store, WRITE):  # released by its holder
        pass


def test_a_holder_whose_lease_was_taken_says_so(s3_server, monkeypatch):
    import fsspec

    monkeypatch.setattr(locks, "LEASE_S", 0.6)
    store = f"{s3_server}/bt.zarr"
    lost = r"bt\.zarr: the write lease was lost"
    with pytest.raises(StoreBusyError, match=lost), store_lock(store, WRITE):
        fs, _ = fsspec.core.url_to_fs(store)
        fs.pipe_file("beamline/.bt.zarr.write.lock", b'{"pid": 1}')  # another writer
        time.sleep(0.8)


def test_a_url_store_without_conditional_writes_is_refused():
    refused = r"memory://bt\.zarr: no write lock for .*memory"
    with pytest.raises(StoreError, match=refused), store_lock("memory://bt.zarr", WRITE):
        pass
