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
