"""The store for the field's tools: NeXus for silx view / PyMca, xarray on the map grid."""

import h5py
import numpy as np
import pytest
import zarr

from app.cli import main
from xrdmap.export import sample_dataset

pytestmark = pytest.mark.slow


def test_nexus_holds_nxdata_maps_on_the_grid(fitted_store, tmp_path, capsys):
    fitted = fitted_store
    out = tmp_path / "bt.h5"
    assert main(["export", fitted, "--nexus", str(out)]) == 0
    assert "open it with silx view" in capsys.readouterr().out
    root = zarr.open_group(fitted, mode="r")
    rows, cols = root["samples/A_urban"].attrs["grid_shape"]
    with h5py.File(out, "r") as f:
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry.attrs["default"] == "A_urban/weight_fraction"
        patterns = entry["A_urban/patterns"]
        assert patterns.attrs["NX_class"] == "NXdata" and patterns.attrs["signal"] == "intensity"
        assert list(patterns.attrs["axes"]) == ["y_um", "x_um", "two_theta"]
        assert patterns["intensity"].shape == (rows, cols, 300)
        assert patterns["two_theta"].attrs["units"] == "degree"
        point = 7  # row-major grid of the simulator: row 1, column 3
        np.testing.assert_allclose(
            patterns["intensity"][point // cols, point % cols],
            root["samples/A_urban/patterns"][point],
        )
        np.testing.assert_allclose(np.diff(patterns["y_um"][:]), 2.0)
        maps = entry["A_urban/weight_fraction"]
        assert maps.attrs["signal"] == "magnetite"
        assert "goethite" in list(maps.attrs["auxiliary_signals"])
        assert maps["goethite"].shape == (rows, cols)
        assert "ferrite" not in maps  # coarse grains: not quantified
        # silx (pyFAI's own dependency) reads them as silx view will show them
        from silx.io.nxdata import NXdata, get_default

        assert NXdata(patterns).is_valid and NXdata(patterns).signal_is_3d
        assert NXdata(maps).is_valid and NXdata(maps).is_image
        assert get_default(f).signal_name == "magnetite"
    # PyMca's stack reader (its ROI imaging) takes the patterns as a map of 1D patterns
    from PyMca5.PyMcaIO.HDF5Stack1D import HDF5Stack1D

    stack = HDF5Stack1D(
        [str(out)],
        {"y": "/A_urban/patterns/intensity", "x": "/A_urban/patterns/two_theta"},
        scanlist=["/entry"],
    )
    assert stack.data.shape == (rows, cols, 300)
    np.testing.assert_allclose(
        stack.data[point // cols, point % cols], root["samples/A_urban/patterns"][point]
    )


def test_a_sample_as_an_xarray_dataset(fitted_store):
    fitted = fitted_store
    ds = sample_dataset(fitted, "B_marine")
    root = zarr.open_group(fitted, mode="r")
    rows, cols = root["samples/B_marine"].attrs["grid_shape"]
    assert ds.patterns.dims == ("y_um", "x_um", "tth_deg")
    assert ds.patterns.shape == (rows, cols, 300)
    assert ds.weight_fraction.dims == ("y_um", "x_um", "phase")
    assert "goethite" in list(ds.phase.values)
    x, y = root["samples/B_marine/positions"][4]
    np.testing.assert_allclose(
        ds.patterns.sel(x_um=x, y_um=y).values, root["samples/B_marine/patterns"][4]
    )
    goethite = ds.weight_fraction.sel(phase="goethite")
    assert float(goethite.max()) > 0.3
