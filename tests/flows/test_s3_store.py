"""The store as an fsspec URL: a beamtime processed into an S3-compatible server on
loopback (moto in server mode), equal to the local store, resumable there too, and
locked against a second writer."""

import os

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.slow


def test_process_into_s3_equals_local_and_resumes(
    prefect_server, s3_server, tiny_beamtime, tiny_store
):
    from flows.process_beamtime import run_process_beamtime
    from xrdmap.config import load_process
    from xrdmap.errors import StoreBusyError
    from xrdmap.locks import WRITE, store_lock

    cfg = load_process()
    cfg = cfg.model_copy(update={"dask": cfg.dask.model_copy(update={"n_workers": 2})})
    store = f"{s3_server}/tiny.zarr"
    first = run_process_beamtime(str(tiny_beamtime.beamtime_dir), store, cfg)
    assert first.frames_processed == 731
    remote, local = zarr.open_group(store, mode="r"), zarr.open_group(tiny_store, mode="r")
    for sample in ("A_urban", "B_marine"):
        for name in ("patterns", "sigma", "status", "frames"):
            np.testing.assert_array_equal(
                remote[f"samples/{sample}/{name}"][:], local[f"samples/{sample}/{name}"][:]
            )
    again = run_process_beamtime(str(tiny_beamtime.beamtime_dir), store, cfg)
    assert again.frames_processed == 0
    with store_lock(store, WRITE), pytest.raises(StoreBusyError, match="busy: write lock held"):
        run_process_beamtime(str(tiny_beamtime.beamtime_dir), store, cfg)
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_outputs_for_people_stay_on_local_disk_beside_a_url_store():
    from pathlib import Path

    from xrdmap.store import maps_dir, queue_root

    assert maps_dir("s3://beamline/bt.zarr/", "v0001") == Path("s3-beamline/bt.zarr-maps/v0001")
    assert queue_root("data/bt.zarr") == Path("data/bt.zarr-queue")
