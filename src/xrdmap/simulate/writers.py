"""Write what a beamline writes: PILATUS miniCBF frames or a NeXus/HDF5 file per sample,
scan metadata, and the markers that say a scan is complete."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import fabio
import h5py
import hdf5plugin
import numpy as np

from xrdmap.config import InstrumentConfig

#: Dectris writes frames bitshuffle + LZ4 compressed (HDF5 filter 32008).
NEXUS_COMPRESSION = hdf5plugin.Bitshuffle(cname="lz4")


def cbf_header(
    instrument: InstrumentConfig,
    *,
    timestamp: datetime,
    beam_xy_px: tuple[float, float],
    n_excluded: int,
) -> str:
    """A PILATUS3 miniCBF header (``_array_data.header_contents``)."""
    lines = [
        "# Detector: PILATUS3 100K, S/N 3-0110",
        f"# {timestamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}",
        "# Pixel_size 172e-6 m x 172e-6 m",
        "# Silicon sensor, thickness 0.001000 m",
        f"# Exposure_time {instrument.exposure_time_s:.7f} s",
        f"# Exposure_period {instrument.exposure_time_s:.7f} s",
        "# Tau = 0 s",
        f"# Count_cutoff {instrument.count_cutoff} counts",
        f"# Threshold_setting: {instrument.threshold_ev:.0f} eV",
        "# Gain_setting: autog (vrf = 1.000)",
        f"# N_excluded_pixels = {n_excluded}",
        "# Excluded_pixels: badpix_mask.tif",
        "# Flat_field: (nil)",
        "# Trim_file: (nil)",
        "# Image_path: /ramdisk/",
        f"# Wavelength {instrument.wavelength_a:.5f} A",
        f"# Detector_distance {instrument.distance_mm / 1000:.5f} m",
        f"# Beam_xy ({beam_xy_px[0]:.2f}, {beam_xy_px[1]:.2f}) pixels",
        f"# Detector_2theta {instrument.detector_tth_deg:.4f} deg.",
        "# Polarization 0.990",
    ]
    return "\r\n".join(lines) + "\r\n"


def write_cbf(path: Path, frame: np.ndarray, header_contents: str) -> None:
    """Write one frame as a byte-offset compressed miniCBF, atomically."""
    image = fabio.cbfimage.CbfImage(
        data=frame,
        header={
            "_array_data.header_convention": "PILATUS_1.2",
            "_array_data.header_contents": header_contents,
        },
    )
    tmp = path.with_suffix(".cbf.part")
    image.write(str(tmp))
    tmp.replace(path)


def create_nexus(
    path: Path,
    n_frames: int,
    shape: tuple[int, int],
    instrument: InstrumentConfig,
    *,
    sample: str,
    start_time: datetime,
) -> h5py.File:
    """Create a NeXus file with ``/entry/data/data`` (n, ny, nx) int32, open for writing."""
    f = h5py.File(path, "w")
    f.attrs["default"] = "entry"
    entry = f.create_group("entry")
    entry.attrs.update({"NX_class": "NXentry", "default": "data"})
    entry["start_time"] = start_time.isoformat()
    entry["sample/name"] = sample
    entry["sample"].attrs["NX_class"] = "NXsample"
    det = entry.create_group("instrument/detector")
    entry["instrument"].attrs["NX_class"] = "NXinstrument"
    det.attrs["NX_class"] = "NXdetector"
    det["description"] = "PILATUS3 100K"
    for name, value, unit in (
        ("x_pixel_size", 172e-6, "m"),
        ("y_pixel_size", 172e-6, "m"),
        ("distance", instrument.distance_mm / 1000, "m"),
        ("count_time", instrument.exposure_time_s, "s"),
        ("threshold_energy", instrument.threshold_ev, "eV"),
        ("saturation_value", instrument.count_cutoff, "counts"),
    ):
        det[name] = value
        det[name].attrs["units"] = unit
    beam = entry.create_group("instrument/beam")
    beam.attrs["NX_class"] = "NXbeam"
    beam["incident_wavelength"] = instrument.wavelength_a
    beam["incident_wavelength"].attrs["units"] = "angstrom"
    data = entry.create_group("data")
    data.attrs.update({"NX_class": "NXdata", "signal": "data"})
    dset = data.create_dataset(
        "data",
        shape=(n_frames, *shape),
        dtype=np.int32,
        chunks=(1, *shape),
        **NEXUS_COMPRESSION,
    )
    dset.attrs["units"] = "counts"
    det["data"] = h5py.SoftLink("/entry/data/data")
    return f


def write_points_csv(path: Path, rows: list[dict]) -> None:
    """The per-point scan table: point, row, col, motor positions, frame file and index."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, payload: dict) -> None:
    """Write ``data`` as indented JSON to ``path``."""
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
