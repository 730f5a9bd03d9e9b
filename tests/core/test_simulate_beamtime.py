"""A whole simulated beamtime on disk: layout, formats, truth, determinism."""

import hashlib
import json

import fabio
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter for h5py)
import numpy as np
import pandas as pd
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.discovery import BEAMTIME_COMPLETE, SCAN_COMPLETE
from xrdmap.simulate.beamtime import SimulationError, simulate_beamtime


def test_layout_and_scan_metadata(tiny_beamtime, tiny_samples):
    bt = tiny_beamtime.beamtime_dir
    meta = json.loads((bt / "beamtime.json").read_text())
    assert meta["samples"] == [s.name for s in tiny_samples]
    assert (bt / "geometry.poni").is_file() and (bt / "mask.edf").is_file()
    assert (bt / BEAMTIME_COMPLETE).is_file()
    for spec in tiny_samples:
        sample = bt / spec.name
        scan = json.loads((sample / "scan.json").read_text())
        assert scan["grid"] == {"rows": spec.grid[0], "cols": spec.grid[1]}
        assert scan["n_points"] == spec.n_points
        assert scan["condition"]["id"] == spec.condition
        points = pd.read_csv(sample / "points.csv")
        assert len(points) == spec.n_points
        assert (points["x_um"] == points["col"] * scan["step_um"]["x"]).all()
        assert (points["y_um"] == points["row"] * scan["step_um"]["y"]).all()
        frames = [sample / f for f in points["file"]]
        assert all(f.is_file() for f in frames)
        marker = (sample / SCAN_COMPLETE).stat().st_mtime_ns
        assert marker >= max(f.stat().st_mtime_ns for f in frames)  # written last
    # the ground truth is not inside the beamtime folder
    assert not any(
        p.name.endswith(".csv") and "frac_" in p.read_text()[:2000] for p in bt.rglob("*.csv")
    )
    assert tiny_beamtime.truth_dir.parent == bt.parent


def test_cbf_opens_in_fabio_with_header_values(tiny_beamtime, instrument, tiny_samples):
    sample = tiny_beamtime.beamtime_dir / tiny_samples[0].name
    image = fabio.open(str(next((sample / "frames").glob("*.cbf"))))
    assert image.data.shape == (195, 487) and image.data.dtype == np.int32
    hdr = image.pilatus_headers
    assert hdr["Exposure_time"] == pytest.approx(instrument.exposure_time_s)
    assert hdr["Wavelength"] == pytest.approx(1.2398, abs=1e-4)
    assert hdr["Detector_distance"] == pytest.approx(0.153)
    assert hdr["Pixel_size"] == pytest.approx((172e-6, 172e-6))
    assert hdr["Count_cutoff"] == instrument.count_cutoff
    assert "PILATUS3 100K" in hdr["Detector"]


def test_truth_labels_follow_the_documented_rule(tiny_beamtime, sim_config, tiny_samples):
    rules = sim_config.labels
    for spec in tiny_samples:
        truth = pd.read_csv(tiny_beamtime.truth_dir / f"{spec.name}.csv")
        assert len(truth) == spec.n_points
        fracs = truth.filter(like="frac_")
        np.testing.assert_allclose(fracs.sum(axis=1), 1.0, atol=1e-3)
        # a phase is seen only where it is, and where it dominates it is always seen
        for label, frac in (
            ("alpha-FeOOH", "frac_goethite"),
            ("gamma-FeOOH", "frac_lepidocrocite"),
            ("Fe3O4", "frac_magnetite"),
        ):
            assert (truth.loc[truth[label] == 1, frac] > 0).all()
            assert (truth.loc[truth[frac] >= 0.5, label] == 1).all()
        assert ((truth["spots_ferrite"] > 0) == truth["Fe(BCC)"]).all()
        other = truth[["frac_akaganeite", "frac_ferrihydrite", "frac_hematite"]].sum(axis=1)
        assert (other[truth["Other"] == 1] > 0).all()
        resin_only = truth["resin only"] == 1
        assert (truth.loc[resin_only, list(CLASS_NAMES)].sum(axis=1) == 1).all()
        no_peaks = truth["Fe without peaks"] == 1
        assert (truth.loc[no_peaks, ["Fe(BCC)", "Fe(FCC)"]].sum(axis=1) == 0).all()
        steel = truth[["frac_ferrite", "frac_austenite", "frac_cementite"]].sum(axis=1)
        assert (steel[no_peaks] >= rules.steel_min_fraction).all()
        assert (truth.loc[resin_only, "frac_resin"] >= rules.resin_min_fraction).all()


def test_cross_section_is_layered(tiny_beamtime, tiny_samples):
    """Resin on top, lepidocrocite outermost, goethite/magnetite inner, steel at the bottom."""
    for spec in tiny_samples:
        t = pd.read_csv(tiny_beamtime.truth_dir / f"{spec.name}.csv")
        depth = {c: t.loc[t[c] == 1, "y_um"].mean() for c in CLASS_NAMES if t[c].sum() > 0}
        steel = t.loc[t["zone"] == "steel", "y_um"].mean()
        assert depth["resin only"] < depth["gamma-FeOOH"] < depth["alpha-FeOOH"] < steel
        assert depth["Fe3O4"] > depth["gamma-FeOOH"]
        assert t.loc[t["row"] == 0, "resin only"].all()
        assert (t.loc[t["row"] == t["row"].max(), "zone"] == "steel").all()


def test_foreign_phases_sit_where_they_are_configured(tiny_beamtime, tiny_samples, sim_config):
    """Dust at the rust surface, sea salt inside chloride-rich rust; no class for either,
    the truth names them where they are seen."""
    n_dust = 0
    for spec in tiny_samples:
        t = pd.read_csv(tiny_beamtime.truth_dir / f"{spec.name}.csv", keep_default_na=False)
        chloride = sim_config.conditions[spec.condition].chloride_mg_m2_day
        halite = t["frac_halite"] > 0
        assert halite.any() == (chloride >= 30)
        assert set(t.loc[halite, "zone"]) <= {"inner rust", "outer rust"}
        dust = (t["frac_quartz"] > 0) | (t["frac_calcite"] > 0)
        assert "steel" not in set(t.loc[dust, "zone"])
        n_dust += int(dust.sum())
        seen = t["unknown phase"] != ""
        assert seen.any() and (dust | halite)[seen].all()
        for name in ("quartz", "calcite", "halite"):
            named = t["unknown phase"].str.contains(name)
            assert (t.loc[named, f"frac_{name}"] > 0).all()
    assert n_dust > 0


def test_rust_thickness_follows_the_condition(tiny_beamtime, tiny_samples):
    thickness = {}
    for spec in tiny_samples:
        t = pd.read_csv(tiny_beamtime.truth_dir / f"{spec.name}.csv")
        rust = t["zone"].isin(["inner rust", "outer rust"])
        thickness[spec.condition] = rust.sum() / spec.grid[1] * 2.0
    assert thickness["C13"] > 1.6 * thickness["C03"]  # marine 205 um vs urban 90 um


def _digest(result) -> str:
    h = hashlib.sha256()
    for path in sorted(result.beamtime_dir.rglob("*.cbf")):
        h.update(fabio.open(str(path)).data.tobytes())
    for path in sorted(result.truth_dir.glob("*.csv")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _one_sample_config(tiny_sim_config, grid=(80, 2)):
    from xrdmap.config import PresetConfig, SampleSpec

    preset = PresetConfig(samples=[SampleSpec(name="S", condition="C03", grid=grid)])
    return tiny_sim_config.model_copy(update={"presets": {"one": preset}})


@pytest.mark.slow
def test_deterministic_for_a_seed_whatever_the_workers(tmp_path, tiny_sim_config):
    cfg = _one_sample_config(tiny_sim_config)
    run = {
        name: simulate_beamtime(
            tmp_path / name, preset="one", seed=s, workers=w, progress=False, sim=cfg
        )
        for name, s, w in (("a", 11, 1), ("b", 11, 2), ("c", 12, 2))
    }
    assert _digest(run["a"]) == _digest(run["b"])
    assert _digest(run["a"]) != _digest(run["c"])


@pytest.mark.slow
def test_hdf5_holds_the_same_frames_as_cbf(tmp_path, tiny_sim_config):
    cfg = _one_sample_config(tiny_sim_config, grid=(80, 1))
    cbf = simulate_beamtime(tmp_path / "c", preset="one", seed=3, progress=False, sim=cfg)
    h5 = simulate_beamtime(
        tmp_path / "h", preset="one", seed=3, layout="hdf5", progress=False, sim=cfg
    )
    with h5py.File(h5.beamtime_dir / "S" / "S.h5", "r") as f:
        dset = f["/entry/data/data"]
        assert dset.shape == (80, 195, 487) and dset.dtype == np.int32
        assert "32008" in dset._filters  # bitshuffle, as Dectris writes
        assert f["/entry"].attrs["NX_class"] == "NXentry"
        assert f["/entry/instrument/detector/distance"][()] == pytest.approx(0.153)
        frames = dset[:]
    points = pd.read_csv(h5.beamtime_dir / "S" / "points.csv")
    assert (points["frame"] == np.arange(80)).all()
    for i, path in enumerate(sorted((cbf.beamtime_dir / "S" / "frames").glob("*.cbf"))):
        np.testing.assert_array_equal(fabio.open(str(path)).data, frames[i])


def test_refuses_to_overwrite(tmp_path, tiny_sim_config):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep me")
    cfg = _one_sample_config(tiny_sim_config, grid=(80, 1))
    with pytest.raises(SimulationError, match="exists and is not empty"):
        simulate_beamtime(tmp_path / "precious", preset="one", progress=False, sim=cfg)
    with pytest.raises(SimulationError, match="refusing to overwrite"):
        simulate_beamtime(
            tmp_path / "precious", preset="one", overwrite=True, progress=False, sim=cfg
        )
    assert (tmp_path / "precious" / "data.txt").read_text() == "keep me"


def test_every_labeled_ferrite_point_shows_its_reflection(tiny_beamtime, integrate, tiny_samples):
    """The label rule matches the data: Fe(BCC) points have a peak at the 110 line."""
    spec = tiny_samples[1]
    sample = tiny_beamtime.beamtime_dir / spec.name
    truth = pd.read_csv(tiny_beamtime.truth_dir / f"{spec.name}.csv")
    points = pd.read_csv(sample / "points.csv")
    checked = 0
    for label in (1, 0):
        # cementite lines (d = 2.01-2.03 A) overlap the 110 position: leave them out
        steel = (truth["zone"] == "steel") & (truth["Fe3C"] == 0)
        rows = truth[(truth["Fe(BCC)"] == label) & steel].head(4)
        for p in rows["point"]:
            r = integrate(fabio.open(str(sample / points.loc[p, "file"])).data)
            on = np.abs(r.radial - 35.68) < 0.15
            off = (np.abs(r.radial - 35.68) > 0.6) & (np.abs(r.radial - 35.68) < 1.5)
            excess = r.intensity[on].max() / np.median(r.intensity[off])
            assert (excess > 1.3) == bool(label), f"point {p}: 110 excess {excess:.2f}"
            checked += 1
    assert checked >= 4
