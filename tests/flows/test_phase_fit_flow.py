"""``xrdmap fit``: the phase fit of every point of a store as a Prefect flow on Dask,
stored, published, drawn, and measured against the simulator's truth."""

import numpy as np
import pandas as pd
import pytest
import zarr

pytestmark = pytest.mark.slow

RUST = ("magnetite", "goethite", "lepidocrocite")


def test_fit_stores_fractions_that_match_the_truth(xrdmap, fresh_store, tiny_beamtime):
    from xrdmap.config import load_phases
    from xrdmap.phase_fractions import fit_sample
    from xrdmap.store import read_phase_fit

    result = xrdmap("fit", fresh_store)
    assert result.returncode == 0, result.stderr
    assert "Fitted 731 patterns with 8 known phases" in result.stdout
    assert "A_urban" in result.stdout and "B_marine" in result.stdout
    root = zarr.open_group(fresh_store, mode="r")
    for sample in ("A_urban", "B_marine"):
        fit = read_phase_fit(root, sample)
        names = list(fit.attrs["phases"])
        weight = fit["weight_fraction"][:]
        quantified = np.array(fit.attrs["quantified"])
        rows = np.isfinite(weight[:, quantified]).all(axis=1)
        np.testing.assert_allclose(weight[rows][:, quantified].sum(axis=1), 1.0, atol=1e-4)
        assert np.isnan(weight[:, ~quantified]).all()
        truth = pd.read_csv(tiny_beamtime.truth_dir / f"{sample}.csv")
        volume = truth[[f"frac_{n}" for n in names]].to_numpy()[:, quantified]
        density = np.array(fit.attrs["density_g_cm3"])[quantified]
        mass = volume * density
        rust = truth[[f"frac_{n}" for n in RUST]].sum(axis=1).to_numpy() >= 0.1
        expected = mass[rust] / mass[rust].sum(axis=1, keepdims=True)
        for name in RUST:
            k = list(np.array(names)[quantified]).index(name)
            mae = np.nanmean(np.abs(weight[rust][:, quantified][:, k] - expected[:, k]))
            assert mae <= 0.05, f"{sample} {name}: MAE {mae:.3f}"
        assert (fit["unexplained"][:] > 0).mean() <= 0.02
    maps = sorted(p.name for p in (fresh_store.parent / "copy.zarr-maps" / "phase-fit").iterdir())
    assert maps == ["A_urban_fractions.png", "B_marine_fractions.png"]

    # a second fit replaces the first: one published group per sample, nothing else
    first = root["samples/A_urban/phase_fit"].attrs["published"]
    fit_sample(str(fresh_store), "A_urban", load_phases())
    group = zarr.open_group(fresh_store, mode="r")["samples/A_urban/phase_fit"]
    assert list(group.group_keys()) == [group.attrs["published"]] != [first]
