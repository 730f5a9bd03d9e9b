"""The process-beamtime flow with real components: a Prefect test server, a local Dask
cluster of worker processes (or, for a small beamtime, a thread of the flow's process),
Zarr stores on disk, CBF files."""

import hashlib
import json
import os
import shutil

import fabio
import numpy as np
import pytest
import zarr

from xrdmap.config import load_process
from xrdmap.errors import ConfigError
from xrdmap.integrate_gpu import cuda_unavailable
from xrdmap.sources import STATUS_CORRUPT, STATUS_MISSING, STATUS_WRONG_SHAPE
from xrdmap.store import StoreError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def in_process_cfg():
    """Chunks of 128 frames; the tiny beamtime is ingested in the flow's process."""
    cfg = load_process()
    return cfg.model_copy(update={"chunk_frames": 128, "frames_chunk_frames": 32})


@pytest.fixture(scope="module")
def small_cfg(in_process_cfg):
    """The same on a local Dask cluster of two worker processes."""
    dask = in_process_cfg.dask.model_copy(update={"n_workers": 2, "in_process_below_mb": 0})
    return in_process_cfg.model_copy(update={"dask": dask})


def run(beamtime_dir, store, cfg):
    from flows.process_beamtime import run_process_beamtime

    return run_process_beamtime(str(beamtime_dir), str(store), cfg)


@pytest.fixture(scope="module")
def processed(prefect_server, tiny_beamtime, small_cfg, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "bt.zarr"
    return run(tiny_beamtime.beamtime_dir, store, small_cfg), store


def test_store_layout(processed, tiny_beamtime):
    summary, store = processed
    assert summary.frames == summary.frames_processed == 731 and not summary.quarantined
    root = zarr.open_group(store, mode="r")
    prov = root.attrs["xrdmap"]
    assert prov["software"]["pyFAI"] and prov["geometry"]["poni_sha256"]
    assert prov["integration"]["npt"] == 300 and prov["samples"] == ["A_urban", "B_marine"]
    g = root["samples/A_urban"]
    assert g["frames"].shape == (320, 195, 487) and g["frames"].chunks == (32, 195, 487)
    assert g["patterns"].shape == (320, 300) and g["patterns"].chunks == (128, 300)
    assert g["patterns"].metadata.dimension_names == ("point", "tth_deg")
    assert g["frames"].compressors[0].cname.value == "lz4"
    assert (g["status"][:] == 0).all() and (g["chunk_done"][:] == 1).all()
    assert g.attrs["grid_shape"] == [80, 4]
    assert g["positions"].shape == (320, 2)
    assert all(c.startswith("md5:") for c in g["input_checksum"][:])
    tth = g["tth_deg"][:]
    assert tth.shape == (300,) and 9.5 < tth[0] < 10 and 40 < tth[-1] < 41


def test_frames_and_patterns_match_the_raw_data(processed, tiny_beamtime, integrate):
    _, store = processed
    g = zarr.open_group(store, mode="r")["samples/B_marine"]
    frames_dir = tiny_beamtime.beamtime_dir / "B_marine" / "frames"
    for point in (0, 150, 410):
        raw = fabio.open(str(frames_dir / f"B_marine_{point + 1:06d}.cbf")).data
        np.testing.assert_array_equal(g["frames"][point], raw)
        ref = integrate(raw)
        np.testing.assert_allclose(g["patterns"][point], ref.intensity, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(g["sigma"][point], ref.sigma, rtol=1e-4, atol=1e-6)


def test_readable_with_xarray(processed):
    """Opened as a newcomer would: consolidated metadata (no warning), the 2theta axis
    and the motor positions as coordinates."""
    import warnings

    xr = pytest.importorskip("xarray")
    _, store = processed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray warns when the metadata is not consolidated
        ds = xr.open_zarr(store, group="samples/A_urban")
    assert ds["patterns"].dims == ("point", "tth_deg")
    assert ds["frames"].dims == ("point", "y_px", "x_px")
    assert {"tth_deg", "x_um", "y_um"} <= set(ds.coords)
    positions = zarr.open_group(store, mode="r")["samples/A_urban/positions"][:]
    np.testing.assert_array_equal(ds["x_um"], positions[:, 0])
    np.testing.assert_array_equal(ds["patterns"].y_um, positions[:, 1])
    assert 9.5 < float(ds["tth_deg"][0]) < 10
    strip = ds.patterns.where(ds.x_um < positions[:, 0].max()).mean("point")  # README's
    assert strip.shape == (300,) and np.isfinite(strip.values).all()


def test_in_process_ingest_writes_the_store_the_cluster_wrote(
    processed, tiny_beamtime, in_process_cfg, tmp_path
):
    _, reference = processed
    summary = run(tiny_beamtime.beamtime_dir, tmp_path / "here.zarr", in_process_cfg)
    assert summary.frames_processed == 731
    a, b = zarr.open_group(tmp_path / "here.zarr", mode="r"), zarr.open_group(reference, mode="r")
    for sample in ("A_urban", "B_marine"):
        for name in ("frames", "patterns", "sigma", "status", "input_checksum", "positions"):
            np.testing.assert_array_equal(
                a[f"samples/{sample}/{name}"][:], b[f"samples/{sample}/{name}"][:], err_msg=name
            )


def test_second_run_does_no_work(processed, tiny_beamtime, in_process_cfg):
    _, store = processed
    again = run(tiny_beamtime.beamtime_dir, store, in_process_cfg)
    assert again.chunks_processed == 0 and again.chunks_skipped == again.chunks


def test_other_settings_are_refused(processed, tiny_beamtime, small_cfg):
    _, store = processed
    other = small_cfg.model_copy(
        update={"integration": small_cfg.integration.model_copy(update={"npt": 500})}
    )
    from xrdmap.plan import plan_beamtime

    with pytest.raises(
        StoreError, match=r"other inputs or settings \(process.integration.npt: 300 -> 500\)"
    ):
        plan_beamtime(str(tiny_beamtime.beamtime_dir), str(store), other)


def test_artifacts_are_published(processed, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter())}
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["summary-bt-zarr"]))
        )
    assert {"progress-bt-zarr-a-urban", "progress-bt-zarr-b-marine"} <= keys
    assert table and "A_urban" in str(table[0].data)
    # every run of this store's flow (a later one may have had nothing to do)
    rows = [row for artifact in table for row in json.loads(artifact.data)]
    worked = [row for row in rows if row["chunks processed"]]
    where = "cpu" if cuda_unavailable() else "cuda:"
    assert worked and all(row["integrated on"].startswith(where) for row in worked)
    assert all(row["integrated on"] == "" for row in rows if not row["chunks processed"])


def _digest_tree(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
            h.update(str(path.stat().st_mtime_ns).encode())
    return h.hexdigest()


def test_bad_frames_are_quarantined_and_input_untouched(
    prefect_server, tiny_beamtime, in_process_cfg, tmp_path
):
    bt = tmp_path / "beamtime"
    shutil.copytree(tiny_beamtime.beamtime_dir, bt)
    frames = bt / "A_urban" / "frames"
    raw = bytearray((frames / "A_urban_000011.cbf").read_bytes())
    raw[-400] ^= 0xFF
    (frames / "A_urban_000011.cbf").write_bytes(bytes(raw))  # point 10: corrupt
    (frames / "A_urban_000201.cbf").unlink()  # point 200: missing
    fabio.cbfimage.CbfImage(data=np.zeros((50, 50), np.int32)).write(
        str(frames / "A_urban_000301.cbf")
    )  # point 300: wrong shape
    before = _digest_tree(bt)
    summary = run(bt, tmp_path / "q.zarr", in_process_cfg)
    assert _digest_tree(bt) == before  # raw input neither modified nor touched
    assert sorted((s, p, c) for s, p, c, _ in summary.quarantined) == [
        ("A_urban", 10, STATUS_CORRUPT),
        ("A_urban", 200, STATUS_MISSING),
        ("A_urban", 300, STATUS_WRONG_SHAPE),
    ]
    g = zarr.open_group(tmp_path / "q.zarr", mode="r")["samples/A_urban"]
    status, patterns = g["status"][:], g["patterns"][:]
    assert np.isnan(patterns[[10, 200, 300]]).all()
    assert not np.isnan(np.delete(patterns, [10, 200, 300], axis=0)).any()
    assert (np.delete(status, [10, 200, 300]) == 0).all()
    reasons = g["reason"][:]
    assert "Content-MD5" in str(reasons[10]) and "missing" in str(reasons[200])
    assert str(reasons[0]) == ""


def test_sigkill_then_resume(processed, tiny_beamtime, tmp_path):
    """Kill the whole run (CLI, Prefect server, Dask workers) with SIGKILL mid-way; the
    re-runs (in the command's process: a small beamtime) redo no finished chunk and the
    store ends up equal to an uninterrupted one."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from xrdmap.config import CONF_DIR

    store = tmp_path / "killed.zarr"
    on_dask = tmp_path / "conf"  # the killed run on a local cluster, whatever its size
    shutil.copytree(CONF_DIR, on_dask)
    settings = yaml.safe_load((on_dask / "process.yaml").read_text())
    settings["dask"]["in_process_below_mb"] = 0
    (on_dask / "process.yaml").write_text(yaml.safe_dump(settings))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    again = [
        sys.executable,
        "-m",
        "app.cli",
        "process",
        str(tiny_beamtime.beamtime_dir),
        "--store",
        str(store),
        "--chunk-frames",
        "32",
        "--quiet",
    ]
    cmd = [*again[:3], "--conf", str(on_dask), *again[3:], "--workers", "1"]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    def n_done():
        try:
            root = zarr.open_group(store, mode="r")
            return sum(
                int(root[f"samples/{s}"]["chunk_done"][:].sum()) for s in ("A_urban", "B_marine")
            )
        except (FileNotFoundError, KeyError):
            return 0

    deadline = time.monotonic() + 120
    while n_done() < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = n_done()
    total = 10 + 13  # 320 and 411 frames in chunks of 32
    assert 3 <= done_at_kill < total, "the kill came too late to test a resume"

    # the re-runs on the session's server (the killed run had its own)
    rerun = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({total - done_at_kill} chunks)" in rerun.stdout
    assert f"{done_at_kill} chunks were already done" in rerun.stdout
    where = "cpu" if cuda_unavailable() else "cuda:"
    assert f"frames/s, integrated on {where}" in rerun.stdout

    third = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "Nothing to do" in third.stdout

    _, reference = processed
    a, b = zarr.open_group(store, mode="r"), zarr.open_group(reference, mode="r")
    for sample in ("A_urban", "B_marine"):
        for name in ("frames", "patterns", "sigma", "status", "input_checksum"):
            np.testing.assert_array_equal(
                a[f"samples/{sample}/{name}"][:], b[f"samples/{sample}/{name}"][:], err_msg=name
            )


def test_nexus_beamtime_gives_the_same_patterns_as_cbf(prefect_server, in_process_cfg, tmp_path):
    """The same simulated scan written as CBF and as NeXus processes to equal patterns."""
    from xrdmap.config import PresetConfig, SampleSpec, load_simulation
    from xrdmap.simulate.beamtime import simulate_beamtime

    preset = PresetConfig(samples=[SampleSpec(name="N", condition="C02", grid=(72, 2))])
    sim = load_simulation().model_copy(update={"presets": {"n": preset}})
    stores = {}
    for fmt in ("cbf", "hdf5"):
        bt = simulate_beamtime(
            tmp_path / fmt, preset="n", seed=4, layout=fmt, progress=False, sim=sim
        )
        summary = run(bt.beamtime_dir, tmp_path / f"{fmt}.zarr", in_process_cfg)
        assert summary.frames_processed == 144 and not summary.quarantined
        stores[fmt] = zarr.open_group(tmp_path / f"{fmt}.zarr", mode="r")["samples/N"]
    assert all(c.startswith("sha256-chunk:") for c in stores["hdf5"]["input_checksum"][:])
    for name in ("frames", "patterns", "sigma", "status"):
        np.testing.assert_array_equal(stores["cbf"][name][:], stores["hdf5"][name][:])


def test_runs_on_a_real_dask_scheduler_with_two_workers(
    prefect_server, tiny_beamtime, small_cfg, tmp_path, dask_scheduler
):
    """dask.address set: the chunks run on the workers of a `dask scheduler` started
    here with two `dask worker` processes (as on a facility cluster)."""

    def chunks_ran_here() -> bool:
        import sys

        return "xrdmap.ingest" in sys.modules

    dask = small_cfg.dask.model_copy(update={"address": dask_scheduler.address})
    summary = run(
        tiny_beamtime.beamtime_dir,
        tmp_path / "remote.zarr",
        small_cfg.model_copy(update={"dask": dask}),
    )
    ran = dask_scheduler.client.run(chunks_ran_here)
    assert summary.frames_processed == 731
    assert sorted(ran.values()) == [True, True]  # both workers integrated chunks


def test_gpu_chunks_need_a_worker_declaring_a_gpu(
    tiny_beamtime, small_cfg, tmp_path, dask_scheduler
):
    """integration.device cuda on a scheduler whose workers declare no GPU: refused at
    once, naming the scheduler and the fix, instead of chunks waiting forever."""
    cfg = small_cfg.model_copy(
        update={
            "dask": small_cfg.dask.model_copy(update={"address": dask_scheduler.address}),
            "integration": small_cfg.integration.model_copy(update={"device": "cuda"}),
        }
    )
    with pytest.raises(
        ConfigError, match=r"no worker of the scheduler at tcp://127.0.0.1:\d+ declares a GPU"
    ):
        run(tiny_beamtime.beamtime_dir, tmp_path / "gpu.zarr", cfg)
    assert not (tmp_path / "gpu.zarr").exists()
