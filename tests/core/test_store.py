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
        group = root[f"samples/{sample}"]
        n = group["patterns"].shape[0]
        for name in ("frames", "patterns", "sigma", "status", "reason", "input_checksum"):
            chunk = group[name].chunks[0]
            assert task % chunk == 0 or chunk == n, (sample, name, chunk)
        assert group["chunk_done"].chunks == (1,)
        assert group["frames"].shards is None  # no sharding


def test_a_store_of_layout_1_is_still_read(tmp_path):
    """Stores written before samples moved under samples/ (and before confidences were
    published) keep their samples, labels and confidences readable."""
    import numpy as np

    from xrdmap.store import has_confidences, latest_predicted, open_store, read_confidences

    root = zarr.open_group(tmp_path / "old.zarr", mode="w")
    group = root.create_group("S1")
    group.create_array("status", data=np.zeros(4, np.uint8))
    conf = group.create_group("confidence", attributes={"latest": "v0001", "versions": ["v0001"]})
    conf.create_array("v0001", data=np.full((4, 9), 0.7, np.float32))
    root.attrs["xrdmap"] = {"samples": ["S1"], "layout_version": 1}
    store = str(tmp_path / "old.zarr")
    reopened = open_store(store)
    assert latest_predicted(store) == "v0001" and has_confidences(reopened, "v0001")
    assert read_confidences(reopened, "S1", "v0001").shape == (4, 9)
