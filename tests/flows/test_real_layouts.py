"""The raw layouts other beamlines write, simulated at map scale (a DECTRIS NXmx
master with data files, an ESRF BLISS scan over LIMA files, a TIFF series): `init`
writes their manifests, and they run through the whole pipeline (process, predict,
maps, query), giving the patterns the CBF series of the same frames gives."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from xrdmap.config import DaskConfig, load_process
from xrdmap.simulate.beamtime import FLY_JITTER, simulate_beamtime
from xrdmap.store import open_store, sample_group, samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layouts(tiny_sim_config, tmp_path_factory, xrdmap):
    """The tiny beamtime (seed 7, the frames of the session's CBF one) in each raw
    layout, with its manifest written by `xrdmap init`."""
    out = {}
    for layout in ("nxmx", "bliss", "tiff"):
        base = tmp_path_factory.mktemp(layout)
        bt = simulate_beamtime(
            base / "sim", preset="tiny", seed=7, layout=layout, workers=2, progress=False,
            sim=tiny_sim_config,
        )  # fmt: skip
        raw = bt.beamtime_dir
        args = ["init", raw, "--poni", raw / "geometry.poni", "--mask", raw / "mask.edf"]
        if layout != "nxmx":  # no header states the PILATUS cutoff: say it
            args += ["--count-cutoff", "1048575"]
        if layout == "tiff":
            args += ["--positions-csv", "{folder}/positions.csv", "--x", "samx_um"]
            args += ["--y", "samy_um"]
        made = xrdmap(*args, "--out", base / "beamtime.yaml")
        assert made.returncode == 0, made.stderr
        out[layout] = (base / "beamtime.yaml", base / "store.zarr")
    return out


@pytest.fixture(scope="module")
def model(two_versions):
    """A model version trained on the tiny store: (registry, version)."""
    registry, version, _, _ = two_versions
    return registry, version


def test_manifests_say_where_frames_and_positions_are(layouts):
    nxmx = yaml.safe_load(layouts["nxmx"][0].read_text())
    assert [s["name"] for s in nxmx["samples"]] == ["A_urban", "B_marine"]
    assert nxmx["samples"][0]["frames"] == "A_urban/A_urban_master.h5::/entry/data/data_*"
    assert nxmx["samples"][0]["positions"]["x"].endswith("::/entry/sample/transformations/sam_x")
    bliss = yaml.safe_load(layouts["bliss"][0].read_text())
    assert bliss["samples"][1]["positions"]["y"].endswith("::/1.1/measurement/samz")
    tiff = yaml.safe_load(layouts["tiff"][0].read_text())
    assert tiff["samples"][0]["positions"]["file"] == "A_urban/positions.csv"


def test_each_layout_is_sized_by_its_frames_not_its_files(layouts):
    """Whether ingest runs in process or on Dask goes by the frames: an NXmx master
    (kB, its pixels in linked data files), a BLISS scan, a TIFF series of the tiny
    beamtime all weigh its 731 frames, as the CBF series does."""
    from prefect_dask import DaskTaskRunner

    from flows.process_beamtime import ingest_task_runner
    from xrdmap.plan import inspect_beamtime

    cfg = load_process()
    big = cfg.model_copy(update={"dask": cfg.dask.model_copy(update={"in_process_below_mb": 277})})
    for manifest, _ in layouts.values():
        beamtime = inspect_beamtime(str(manifest), cfg).beamtime
        assert beamtime.frames_mb((195, 487)) == 731 * 195 * 487 * 4 / 1e6
        assert isinstance(ingest_task_runner(big, str(manifest)), DaskTaskRunner)


@pytest.mark.parametrize("layout", ["nxmx", "bliss", "tiff"])
def test_each_layout_gives_the_patterns_of_the_cbf_series(
    layouts, tiny_store, layout, process_core
):
    manifest, store = layouts[layout]
    process_core(manifest, store)
    ours, reference = open_store(str(store)), open_store(tiny_store)
    for mine, theirs in zip(samples(ours), samples(reference), strict=True):
        a, b = sample_group(ours, mine), sample_group(reference, theirs)
        assert (a["status"][:] == 0).all()
        np.testing.assert_array_equal(a["patterns"][:], b["patterns"][:])
        np.testing.assert_array_equal(a["grid_index"][:], b["grid_index"][:])
        jitter = 6 * FLY_JITTER * 2.0 if layout == "bliss" else 1e-9  # fly-scan encoders
        np.testing.assert_allclose(a["positions"][:], b["positions"][:], atol=jitter)


@pytest.mark.parametrize("layout", ["nxmx", "bliss"])
def test_nxmx_and_bliss_through_predict_maps_and_query(
    prefect_server, dask_scheduler, layouts, model, layout
):
    """On a running Dask cluster (loopback scheduler + 2 workers), as at a facility."""
    from flows.active_learning import query_relabel
    from flows.predict import run_predict_store
    from flows.process_beamtime import run_process_beamtime

    manifest, _ = layouts[layout]
    store = manifest.parent / "flow.zarr"
    dask = DaskConfig(address=dask_scheduler.address)
    cfg = load_process().model_copy(update={"dask": dask})
    done = run_process_beamtime(str(manifest), str(store), cfg)
    assert done.frames_processed == 731 and not done.quarantined
    registry, version = model
    maps = store.parent / "maps"
    summary = run_predict_store(str(store), registry, dask, version=version, maps_dir=str(maps))
    assert summary.n_points == 731
    assert len(list(maps.rglob("*_phases.png"))) == 2
    queue, asked_with = query_relabel(str(store), 5, version=version)
    assert asked_with == version
    assert len(Path(queue).read_text().splitlines()) == 6
