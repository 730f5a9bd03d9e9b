"""``xrdmap fit``: the phase fit of every point of a store as a Prefect flow on Dask,
stored, published, drawn, and measured against the simulator's truth."""

import numpy as np
import pytest
import zarr

pytestmark = pytest.mark.slow


def test_fit_stores_fractions_that_match_the_truth(xrdmap, fresh_store, tiny_beamtime):
    from xrdmap.config import load_phases
    from xrdmap.phase_fractions import fit_sample
    from xrdmap.simulate.fit_scores import RUST_PHASES as RUST
    from xrdmap.simulate.fit_scores import score_sample
    from xrdmap.store import read_phase_fit

    result = xrdmap("fit", fresh_store)
    assert result.returncode == 0, result.stderr
    assert "Fitted 731 patterns with 9 known phases" in result.stdout
    assert "A_urban" in result.stdout and "B_marine" in result.stdout
    root = zarr.open_group(fresh_store, mode="r")
    for sample in ("A_urban", "B_marine"):
        fit = read_phase_fit(root, sample)
        weight = fit["weight_fraction"][:]
        quantified = np.array(fit.attrs["quantified"])
        rows = np.isfinite(weight[:, quantified]).all(axis=1)
        np.testing.assert_allclose(weight[rows][:, quantified].sum(axis=1), 1.0, atol=1e-4)
        assert np.isnan(weight[:, ~quantified]).all()
        scores = score_sample(str(fresh_store), tiny_beamtime.truth_dir, sample)
        for name in RUST:
            assert scores.mae[name] <= 0.05, f"{sample} {name}: MAE {scores.mae[name]:.3f}"
        assert scores.n_found >= 0.9 * scores.n_unknown  # points with a foreign phase seen
        assert scores.n_false <= 0.02 * scores.n_other
        if sample == "B_marine":  # sea salt in the marine rust, reported by its d
            assert scores.n_unknown > 0
            marine = next(line for line in result.stdout.splitlines() if "B_marine" in line)
            assert "/ 2.82" in marine  # halite (200), d = 2.820 A
    import xarray as xr  # the fit as xarray reads it: consolidated, phases named

    published = root["samples/A_urban/phase_fit"].attrs["published"]
    ds = xr.open_zarr(fresh_store, group=f"samples/A_urban/phase_fit/{published}")
    assert list(ds["phase"].values) == fit.attrs["phases"]
    assert ds["weight_fraction"].dims == ("point", "phase")
    maps = sorted(p.name for p in (fresh_store.parent / "copy.zarr-maps" / "phase-fit").iterdir())
    assert maps == ["A_urban_fractions.png", "B_marine_fractions.png"]

    # a second fit replaces the first: one published group per sample, nothing else
    first = root["samples/A_urban/phase_fit"].attrs["published"]
    fit_sample(str(fresh_store), "A_urban", load_phases())  # outside a flow: not consolidated
    group = zarr.open_group(fresh_store, mode="r", use_consolidated=False)[
        "samples/A_urban/phase_fit"
    ]
    assert list(group.group_keys()) == [group.attrs["published"]] != [first]


def test_report_against_the_truth(xrdmap, fitted_store, tiny_beamtime, tmp_path, capsys):
    """Thickness within a scan step, alpha/gamma* within 15% of the truth's, and the
    report's table, profiles and figure, with the sample sheet joined."""
    import pandas as pd

    from app.cli import main
    from xrdmap.simulate.fit_scores import score_layers

    for sample in ("A_urban", "B_marine"):
        scores = score_layers(fitted_store, tiny_beamtime.truth_dir, sample)
        assert scores.thickness_error_um.size >= 3  # every column but at most one
        if sample == "A_urban":  # B_marine's 3 columns hold its 5 cracks: no surface left
            assert np.median(np.abs(scores.thickness_error_um)) <= scores.step_um
        found, truth = scores.alpha_gamma_star
        assert abs(found / truth - 1) <= 0.15, f"{sample}: {found:.3f} vs {truth:.3f}"
        assert abs(scores.porosity[0] - scores.porosity[1]) <= 0.1
    sheet = tiny_beamtime.beamtime_dir.parent / "sample_sheet.csv"
    result = xrdmap("report", fitted_store, "--sample-sheet", sheet, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Report of 2 samples" in result.stdout
    table = pd.read_csv(tmp_path / "report.csv")
    assert list(table["sample"]) == ["A_urban", "B_marine"]
    assert list(table["environment"]) == ["urban", "marine"]
    assert (table["thickness_um_mean"] > 0).all() and table["alpha_gamma_star"].notna().all()
    profiles = pd.read_csv(tmp_path / "profiles.csv")
    assert {"distance_um", "goethite", "lepidocrocite", "sample"} <= set(profiles.columns)
    assert (tmp_path / "report.png").stat().st_size > 20_000
    (tmp_path / "sheet.csv").write_text("name,condition\nA_urban,C03\n")
    assert main(["report", fitted_store, "--sample-sheet", str(tmp_path / "sheet.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a 'sample' column" in err
