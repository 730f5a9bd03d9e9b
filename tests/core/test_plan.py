"""The beamtime is inspected once per run: the pre-check and the plan share it while
nothing it read has changed."""

import os
import shutil

from xrdmap.config import load_process
from xrdmap.plan import inspect_beamtime, plan_beamtime, preflight


def test_preflight_and_plan_share_one_inspection(tiny_beamtime, tmp_path):
    bt = tmp_path / "bt"
    shutil.copytree(tiny_beamtime.beamtime_dir, bt)
    cfg = load_process()
    first = preflight(str(bt), str(tmp_path / "s.zarr"), cfg)
    assert not (tmp_path / "s.zarr").exists()  # the pre-check writes nothing
    plan = plan_beamtime(str(bt), str(tmp_path / "s.zarr"), cfg)
    assert plan.beamtime is first.beamtime  # reused, not read again
    assert inspect_beamtime(str(bt), cfg) is first


def test_a_changed_input_is_inspected_again(tiny_beamtime, tmp_path):
    bt = tmp_path / "bt"
    shutil.copytree(tiny_beamtime.beamtime_dir, bt)
    cfg = load_process()
    first = inspect_beamtime(str(bt), cfg)
    frame = bt / "A_urban" / "frames" / "A_urban_000003.cbf"
    frame.unlink()  # the frame folder changes: the missing frame must be seen
    second = inspect_beamtime(str(bt), cfg)
    assert second is not first
    assert not first.beamtime.sample("A_urban").missing
    assert len(second.beamtime.sample("A_urban").missing) == 1
    poni = bt / "geometry.poni"
    stat = poni.stat()
    os.utime(poni, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert inspect_beamtime(str(bt), cfg) is not second
    other = cfg.model_copy(update={"chunk_frames": 50})
    assert inspect_beamtime(str(bt), other) is not inspect_beamtime(str(bt), cfg)


def test_how_a_store_is_made_never_refuses_it(tiny_beamtime, tmp_path):
    """Where a store is processed and the frames per sparse product change nothing in it
    (the same patterns to the bit, test_integrate.py): resuming with other values is
    allowed, also in a store that recorded them before they were left out; a setting
    that changes its contents is still refused."""
    import pytest
    import zarr

    from xrdmap.hashing import sha256_json
    from xrdmap.store import ROOT_ATTR, StoreError

    bt, store = str(tiny_beamtime.beamtime_dir), str(tmp_path / "s.zarr")
    cfg = load_process()
    plan_beamtime(bt, store, cfg)
    elsewhere = cfg.model_copy(
        update={
            "integration": cfg.integration.model_copy(update={"batch_frames": 3, "device": "cpu"}),
            "dask": cfg.dask.model_copy(update={"n_workers": 7}),
        }
    )
    assert len(plan_beamtime(bt, store, elsewhere).todo) == len(plan_beamtime(bt, store, cfg).todo)
    root = zarr.open_group(store, mode="r+")
    record = root.attrs[ROOT_ATTR]
    record["settings"]["process"]["integration"]["batch_frames"] = 32  # as stores recorded it
    record["settings_sha256"] = sha256_json(record["settings"])
    root.attrs[ROOT_ATTR] = record
    plan_beamtime(bt, store, cfg)
    npt = cfg.model_copy(update={"integration": cfg.integration.model_copy(update={"npt": 500})})
    with pytest.raises(StoreError, match=r"process.integration.npt: 300 -> 500\)"):
        plan_beamtime(bt, store, npt)
