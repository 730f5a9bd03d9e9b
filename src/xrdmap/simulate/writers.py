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
    dset = _frames_dataset(data, "data", n_frames, shape)
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


#: Frames per NXmx data file and per LIMA file, as DECTRIS and ESRF write them.
FRAMES_PER_FILE = 1000


def _frames_dataset(
    group: h5py.Group, name: str, n_frames: int, shape: tuple[int, int]
) -> h5py.Dataset:
    """(n, ny, nx) int32 frames, one chunk per frame, bitshuffle-LZ4, as DECTRIS and
    LIMA write them."""
    return group.create_dataset(
        name, shape=(n_frames, *shape), dtype=np.int32, chunks=(1, *shape), **NEXUS_COMPRESSION
    )


def _nx(group: h5py.Group, nx_class: str) -> h5py.Group:
    group.attrs["NX_class"] = nx_class
    return group


def _put(group: h5py.Group, name: str, value: object, unit: str | None = None) -> None:
    group[name] = value
    if unit:
        group[name].attrs["units"] = unit


def create_nxmx(
    sample_dir: Path,
    sample: str,
    n_frames: int,
    shape: tuple[int, int],
    instrument: InstrumentConfig,
    *,
    beam_xy_px: tuple[float, float],
    positions_mm: np.ndarray,
    start_time: datetime,
) -> list[h5py.Dataset]:
    """A DECTRIS-style NXmx master ``<sample>_master.h5`` whose ``/entry/data/data_NNNNNN``
    external links point to data files of :data:`FRAMES_PER_FILE` frames (bitshuffle-LZ4);
    the sample translations (x, y, mm) in ``/entry/sample/transformations``. Returns the
    data files' datasets, open for writing."""
    master = h5py.File(sample_dir / f"{sample}_master.h5", "w")
    entry = _nx(master.create_group("entry"), "NXentry")
    entry["definition"] = "NXmx"
    entry["start_time"] = start_time.isoformat()
    det = _nx(entry.create_group("instrument/detector"), "NXdetector")
    _nx(entry["instrument"], "NXinstrument")
    det["description"] = "Dectris PILATUS3 100K (simulated)"
    for name, value, unit in (
        ("x_pixel_size", 172e-6, "m"),
        ("y_pixel_size", 172e-6, "m"),
        ("detector_distance", instrument.distance_mm / 1000, "m"),
        ("beam_center_x", beam_xy_px[0], "pixel"),
        ("beam_center_y", beam_xy_px[1], "pixel"),
        ("count_time", instrument.exposure_time_s, "s"),
        ("saturation_value", instrument.count_cutoff, "counts"),
    ):
        _put(det, name, value, unit)
    spec = det.create_group("detectorSpecific")
    _put(spec, "nimages", n_frames)
    _put(spec, "ntrigger", 1)
    _put(spec, "x_pixels_in_detector", shape[1])
    _put(spec, "y_pixels_in_detector", shape[0])
    beam = _nx(entry.create_group("instrument/beam"), "NXbeam")
    _put(beam, "incident_wavelength", instrument.wavelength_a, "angstrom")
    transformations = _nx(entry.create_group("sample/transformations"), "NXtransformations")
    _nx(entry["sample"], "NXsample")
    for axis, column in (("sam_x", 0), ("sam_y", 1)):
        _put(transformations, axis, positions_mm[:, column], "mm")
        transformations[axis].attrs["transformation_type"] = "translation"
    data = _nx(entry.create_group("data"), "NXdata")
    datasets = []
    for k, first in enumerate(range(0, n_frames, FRAMES_PER_FILE)):
        name = f"{sample}_data_{k + 1:06d}.h5"
        count = min(FRAMES_PER_FILE, n_frames - first)
        dset = _frames_dataset(h5py.File(sample_dir / name, "w"), "entry/data/data", count, shape)
        dset.attrs.update({"image_nr_low": first + 1, "image_nr_high": first + count})
        data[f"data_{k + 1:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
        datasets.append(dset)
    master.close()
    return datasets


def create_bliss_scan(
    sample_dir: Path,
    sample: str,
    n_frames: int,
    shape: tuple[int, int],
    *,
    positions_mm: np.ndarray,
    start_time: datetime,
) -> list[h5py.Dataset]:
    """An ESRF BLISS dataset ``<sample>_0001/<sample>_0001.h5`` holding scan ``1.1`` (a
    mesh of samy x samz): ``instrument/pilatus/data`` a virtual dataset over LIMA files
    ``scan0001/pilatus_NNNN.h5`` of :data:`FRAMES_PER_FILE` frames; the motors per point
    in ``measurement/`` and, linked, ``instrument/positioners/``; other motors as a
    snapshot. Returns the LIMA files' datasets, open for writing."""
    dataset_dir = sample_dir / f"{sample}_0001"
    (dataset_dir / "scan0001").mkdir(parents=True)
    layout = h5py.VirtualLayout(shape=(n_frames, *shape), dtype=np.int32)
    datasets = []
    for k, first in enumerate(range(0, n_frames, FRAMES_PER_FILE)):
        count = min(FRAMES_PER_FILE, n_frames - first)
        name = f"scan0001/pilatus_{k:04d}.h5"
        lima = h5py.File(dataset_dir / name, "w")
        dset = _frames_dataset(lima, "entry_0000/measurement/data", count, shape)
        layout[first : first + count] = h5py.VirtualSource(
            name, "entry_0000/measurement/data", shape=(count, *shape)
        )
        datasets.append(dset)
    with h5py.File(dataset_dir / f"{sample}_0001.h5", "w") as h5:
        scan = _nx(h5.create_group("1.1"), "NXentry")
        scan["title"] = f"amesh samy ... samz ... {n_frames} points"
        scan["start_time"] = start_time.isoformat()
        pilatus = _nx(scan.create_group("instrument/pilatus"), "NXdetector")
        pilatus.create_virtual_dataset("data", layout, fillvalue=-1)
        positioners = _nx(scan.create_group("instrument/positioners"), "NXcollection")
        measurement = _nx(scan.create_group("measurement"), "NXcollection")
        for motor, column in (("samy", 0), ("samz", 1)):
            _put(measurement, motor, positions_mm[:, column], "mm")
            positioners[motor] = h5py.SoftLink(f"/1.1/measurement/{motor}")
        for motor, value in (("samx", 12.5), ("samrz", 0.0), ("diffty", 3.2)):
            _put(positioners, motor, value, "mm")
        measurement["pilatus"] = h5py.SoftLink("/1.1/instrument/pilatus/data")
        _put(measurement, "epoch", start_time.timestamp() + np.arange(n_frames) * 2.05, "s")
    return datasets


def write_tiff(path: Path, frame: np.ndarray) -> None:
    """Write one frame as an uncompressed 32-bit TIFF with fabio, atomically."""
    tmp = path.with_name(path.name + ".part")
    fabio.tifimage.TifImage(data=frame).write(str(tmp))
    tmp.replace(path)
