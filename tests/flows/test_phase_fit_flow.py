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
    maps = sorted(p.name for p in (fresh_store.parent / "copy.zarr-maps" / "phase-fit").iterdir())
    assert maps == ["A_urban_fractions.png", "B_marine_fractions.png"]

    # a second fit replaces the first: one published group per sample, nothing else
    first = root["samples/A_urban/phase_fit"].attrs["published"]
    fit_sample(str(fresh_store), "A_urban", load_phases())
    group = zarr.open_group(fresh_store, mode="r")["samples/A_urban/phase_fit"]
    assert list(group.group_keys()) == [group.attrs["published"]] != [first]
