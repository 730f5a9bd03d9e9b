"""A store for the field's tools: NeXus (silx view, PyMca) and xarray.

``export_nexus`` writes one ``NXentry`` with one ``NXsubentry`` per sample, holding
``NXdata`` groups on the sample's (y, x) map grid:

- ``patterns``: intensity (y, x, 2theta) with its sigma as ``errors``, axes y, x in um
  and 2theta in degrees (silx view shows it as an image stack; PyMca as a map);
- ``weight_fraction`` (when the phase fit is there): one (y, x) map per quantified phase,
  the first the signal and the others auxiliary signals, plus ``unexplained``;
- ``confidence`` (when a model predicted): one (y, x) map per class of the latest
  version.

``sample_dataset`` returns a sample as an :class:`xarray.Dataset` on its (y, x) grid with
coordinates y_um, x_um, tth_deg, class and phase, read from the store in one call.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from xrdmap import __version__
from xrdmap.classes import CLASS_NAMES
from xrdmap.outputs import written_whole
from xrdmap.store import (
    CONFIDENCE,
    PHASE_FIT,
    latest_predicted,
    on_grid,
    open_store,
    read_confidences,
    read_phase_fit,
    sample_group,
    samples,
    tth_axis,
)


def _grid_axes(root, sample: str) -> tuple[np.ndarray, np.ndarray]:
    """(y_um per row, x_um per column) of the sample's map grid."""
    positions = sample_group(root, sample)["positions"][:]
    y = np.nanmean(on_grid(root, sample, positions[:, 1]), axis=1)
    x = np.nanmean(on_grid(root, sample, positions[:, 0]), axis=0)
    return y, x


def _maps(root, sample: str, values: np.ndarray) -> np.ndarray:
    """(n, k) per-point values -> (k, rows, cols) maps."""
    return np.moveaxis(on_grid(root, sample, values), -1, 0)


def _nxdata(parent: h5py.Group, name: str, signals: dict[str, np.ndarray], axes: dict) -> None:
    group = parent.create_group(name)
    group.attrs["NX_class"] = "NXdata"
    names = list(signals)
    group.attrs["signal"] = names[0]
    if len(names) > 1:
        group.attrs["auxiliary_signals"] = names[1:]
    group.attrs["axes"] = list(axes)
    for key, values in signals.items():
        group.create_dataset(key, data=values, compression="gzip", shuffle=True)
    for key, (values, units) in axes.items():
        group.create_dataset(key, data=values).attrs["units"] = units


def export_nexus(store: str, out: str | Path) -> Path:
    """Write ``out`` (NeXus/HDF5) from ``store``; see the module docstring."""
    root = open_store(store)
    out = Path(out)
    with written_whole(out) as part, h5py.File(part, "w") as f:
        f.attrs["creator"] = f"xrdmap {__version__}"
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("title", data=f"xrdmap store {store}")
        version = latest_predicted(store)
        for k, sample in enumerate(samples(root)):
            group = sample_group(root, sample)
            sub = entry.create_group(sample)
            sub.attrs["NX_class"] = "NXsubentry"
            y, x = _grid_axes(root, sample)
            yx = {"y_um": (y, "um"), "x_um": (x, "um")}
            patterns = on_grid(root, sample, group["patterns"][:]).astype(np.float32)
            sigma = on_grid(root, sample, group["sigma"][:]).astype(np.float32)
            _nxdata(
                sub,
                "patterns",
                {"intensity": patterns},
                yx | {"two_theta": (tth_axis(root), "degree")},
            )
            sub["patterns"].create_dataset("intensity_errors", data=sigma, compression="gzip")
            default = "patterns"
            if PHASE_FIT in group:
                fit = read_phase_fit(root, sample)
                names = list(fit.attrs["phases"])
                quantified = list(fit.attrs["quantified"])
                maps = _maps(root, sample, fit["weight_fraction"][:]).astype(np.float32)
                signals = {names[i]: maps[i] for i, q in enumerate(quantified) if q}
                signals["unexplained"] = on_grid(root, sample, fit["unexplained"][:]).astype(
                    np.float32
                )
                _nxdata(sub, "weight_fraction", signals, yx)
                default = "weight_fraction"
            if version and CONFIDENCE in group:
                conf = _maps(root, sample, read_confidences(root, sample, version))
                signals = {name: conf[i].astype(np.float32) for i, name in enumerate(CLASS_NAMES)}
                _nxdata(sub, "confidence", signals, yx)
                sub["confidence"].attrs["model_version"] = version
            sub.attrs["default"] = default
            if k == 0:
                entry.attrs["default"] = f"{sample}/{default}"
    return out


def sample_dataset(store: str, sample: str):
    """``sample`` as an :class:`xarray.Dataset` on its (y, x) map grid: ``patterns`` and
    ``sigma`` (y_um, x_um, tth_deg), ``status``, the latest ``confidence`` (..., class)
    and, after ``xrdmap fit``, ``weight_fraction`` (..., phase) and ``unexplained``."""
    import xarray as xr

    root = open_store(store)
    group = sample_group(root, sample)
    y, x = _grid_axes(root, sample)
    dims = ("y_um", "x_um")
    data = {
        "patterns": ((*dims, "tth_deg"), on_grid(root, sample, group["patterns"][:])),
        "sigma": ((*dims, "tth_deg"), on_grid(root, sample, group["sigma"][:])),
        "status": (dims, on_grid(root, sample, group["status"][:])),
    }
    coords: dict = {"y_um": y, "x_um": x, "tth_deg": tth_axis(root)}
    attrs: dict = {"store": str(store), "sample": sample}
    version = latest_predicted(store)
    if version and CONFIDENCE in group:
        conf = read_confidences(root, sample, version)
        data["confidence"] = ((*dims, "class"), on_grid(root, sample, conf))
        coords["class"] = list(CLASS_NAMES)
        attrs["model_version"] = version
    if PHASE_FIT in group:
        fit = read_phase_fit(root, sample)
        data["weight_fraction"] = (
            (*dims, "phase"),
            on_grid(root, sample, fit["weight_fraction"][:]),
        )
        data["unexplained"] = (dims, on_grid(root, sample, fit["unexplained"][:]))
        coords["phase"] = list(fit.attrs["phases"])
    return xr.Dataset(data, coords=coords, attrs=attrs)
