"""Store layout rules that keep parallel writers safe."""

import numcodecs.blosc
import zarr

from xrdmap.config import load_process


def test_codecs_run_single_threaded_in_workers(tiny_store):
    # tiny_store ran process_chunk in this process, as a Dask worker would
    assert numcodecs.blosc.use_threads is False
    assert numcodecs.blosc.get_nthreads() == 1
    assert zarr.config.get("threading.max_workers") == 1


def test_every_task_writes_whole_chunks(tiny_store):
    """Chunks along the points never straddle two tasks' regions."""
    task = load_process().chunk_frames
    root = zarr.open_group(tiny_store, mode="r")
    for sample in root.attrs["xrdmap"]["samples"]:
        group = root[sample]
        n = group["patterns"].shape[0]
        for name in ("frames", "patterns", "sigma", "status", "reason", "input_checksum"):
            chunk = group[name].chunks[0]
            assert task % chunk == 0 or chunk == n, (sample, name, chunk)
        assert group["chunk_done"].chunks == (1,)
        assert group["frames"].shards is None  # no sharding
