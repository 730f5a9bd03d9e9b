"""The beamtime manifest: what ``xrdmap process`` needs of a real beamtime, in one
YAML file beside (never inside) the raw data.

``xrdmap init`` writes it; a person may write or edit it. It names the raw folder, the
geometry (a PONI file, and what the PONI may lack: pixel size, image orientation),
and per sample where the frames are (files, a glob, an HDF5 dataset or an NXmx
master's data files) and where the motor positions are (steps, a CSV, HDF5 datasets).
The map grid is derived from the positions. See the README, "Beamtime manifest".
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

import h5py
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from xrdmap.beamtime import (
    NO_COUNT_CUTOFF,
    Beamtime,
    SampleScan,
    first_frame,
    inside,
    missing_frames,
)
from xrdmap.config import _Model, load_yaml_model
from xrdmap.errors import BeamtimeError
from xrdmap.hashing import sha256_json
from xrdmap.positions import grid_from_positions, step_positions
from xrdmap.sources import FrameError, open_source, source_class, split_spec
from xrdmap.sources.cbf import CbfFile
from xrdmap.tables import read_csv_table

MANIFEST_VERSION = 1
#: Micrometres per unit of a motor position.
UNIT_UM = {"um": 1.0, "mm": 1e3, "nm": 1e-3}
SAMPLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StepPositions(_Model):
    """Positions from the scan's steps: rows along y, points along x."""

    source: Literal["steps"]
    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    step_um: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    order: Literal["raster", "snake"] = "raster"


class CsvPositions(_Model):
    """Positions from two columns of a CSV table, one row per frame."""

    source: Literal["csv"]
    file: str
    x: str
    y: str
    unit: Literal["um", "mm", "nm"] = "um"


class Hdf5Positions(_Model):
    """Positions from two 1D HDF5 datasets (``file.h5::/1.1/measurement/samy``)."""

    source: Literal["hdf5"]
    x: str
    y: str
    unit: Literal["um", "mm", "nm"] = "mm"


Positions = Annotated[StepPositions | CsvPositions | Hdf5Positions, Field(discriminator="source")]


class SampleEntry(_Model):
    """One sample: its frames and positions, in acquisition order."""

    name: str = Field(pattern=SAMPLE_NAME)
    frames: str | list[str] = Field(min_length=1)
    positions: Positions
    grid_tolerance_um: float | None = Field(None, gt=0)


class GeometryEntry(_Model):
    """The detector geometry: a PONI file and what it may not say."""

    poni: str
    mask: str | None = None
    pixel_size_um: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = None
    orientation: int | None = Field(None, ge=1, le=4)
    count_cutoff: int | None = Field(None, gt=0)


class Manifest(_Model):
    """A beamtime manifest (``beamtime.yaml``)."""

    xrdmap_manifest: Literal[1]
    raw: str
    geometry: GeometryEntry
    samples: list[SampleEntry] = Field(min_length=1)

    @field_validator("samples")
    @classmethod
    def _distinct(cls, samples: list[SampleEntry]) -> list[SampleEntry]:
        names = [s.name for s in samples]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice")
        return samples


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; errors name the file and the field."""
    return load_yaml_model(path, Manifest)


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def frame_files(raw: Path, spec: str, *, where: str) -> list[tuple[str, int | None]]:
    """Each file (or ``file::dataset``) that ``spec`` names, relative to ``raw``, with
    its number of frames (None where the file that holds them is missing)."""
    name, dataset = split_spec(spec)
    inside(raw, (raw / name).parent, what=f"{where}: frames")
    if dataset is not None and any(c in dataset for c in "*?["):
        return _datasets(raw, name, dataset, where=where)
    if any(c in name for c in "*?["):
        found = sorted(
            (str(p.relative_to(raw)) for p in raw.glob(name) if p.is_file()), key=_natural
        )
        if not found:
            raise BeamtimeError(f"{where}: frames: {name!r} matches no file in {raw}")
        return [(f, _frame_count(raw, f, dataset)) for f in found]
    inside(raw, raw / name, what=f"{where}: frames")
    return [(spec, _frame_count(raw, name, dataset))]


def _frame_count(raw: Path, name: str, dataset: str | None) -> int | None:
    path = raw / name
    if source_class(path) is CbfFile:
        return 1  # a miniCBF holds one frame; reading it is not needed to count
    spec = f"{name}::{dataset}" if dataset else name
    try:
        with open_source(spec, raw) as source:
            return source.n_frames
    except FrameError:
        return None


def _datasets(raw: Path, name: str, pattern: str, *, where: str) -> list[tuple[str, int | None]]:
    """The datasets of one group whose names match (an NXmx master's ``data_*``): their
    frame counts; a missing data file's count from the master's image count."""
    group_name, leaf = pattern.rsplit("/", 1)
    try:
        with h5py.File(raw / name, "r") as h5:
            group = h5[group_name or "/"]
            names = sorted((k for k in group if fnmatch.fnmatch(k, leaf)), key=_natural)
            total = _nxmx_images(h5)
    except (OSError, KeyError) as exc:
        raise BeamtimeError(f"{where}: frames: {raw / name}::{group_name}: {exc}") from None
    if not names:
        raise BeamtimeError(f"{where}: frames: no dataset {pattern!r} in {raw / name}")
    out = [
        (f"{name}::{group_name}/{k}", _frame_count(raw, name, f"{group_name}/{k}")) for k in names
    ]
    known = [n for _, n in out if n is not None]
    if len(known) < len(out):  # data files hold equal numbers of frames, the last fewer
        per_file = max(known) if known else total
        left = (total - sum(known)) if total else None
        filled = []
        for i, (spec, n) in enumerate(out):
            if n is None:
                last = i == len(out) - 1
                n = left if last and left is not None else per_file
            filled.append((spec, n))
        out = filled
    return out


def _nxmx_images(h5: h5py.File) -> int | None:
    spec = "/entry/instrument/detector/detectorSpecific"
    try:
        return int(h5[f"{spec}/nimages"][()]) * int(h5[f"{spec}/ntrigger"][()])
    except (KeyError, TypeError, ValueError):
        return None


def read_positions(raw: Path, positions: Positions, *, where: str) -> np.ndarray:
    """(n, 2) x_um, y_um in acquisition order."""
    if isinstance(positions, StepPositions):
        return step_positions(
            positions.rows, positions.cols, positions.step_um, snake=positions.order == "snake"
        )
    scale = UNIT_UM[positions.unit]
    if isinstance(positions, CsvPositions):
        path = raw / positions.file
        table = read_csv_table(path, (positions.x, positions.y), dtype={}, error=BeamtimeError)
        columns = [
            pd.to_numeric(table[c], errors="coerce").to_numpy(float)
            for c in (positions.x, positions.y)
        ]
        xy = np.column_stack(columns) * scale
        where = str(path)
    else:
        xy = np.column_stack(
            [_hdf5_vector(raw, s, where=where) for s in (positions.x, positions.y)]
        )
        xy = xy * scale
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise BeamtimeError(f"{where}: positions: point {int(np.flatnonzero(bad)[0])} not finite")
    return xy


def _hdf5_vector(raw: Path, spec: str, *, where: str) -> np.ndarray:
    name, dataset = split_spec(spec)
    if dataset is None:
        raise BeamtimeError(f"{where}: positions: {spec!r}: give file.h5::/path/to/motor")
    try:
        with h5py.File(raw / name, "r") as h5:
            values = np.asarray(h5[dataset][()], dtype=float)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise BeamtimeError(f"{where}: positions: {raw / name}::{dataset}: {exc}") from None
    if values.ndim != 1:
        raise BeamtimeError(f"{where}: positions: {spec}: not a 1D list of positions")
    return values


def discover_manifest(path: Path) -> Beamtime:
    """The beamtime a manifest describes, every sample's frames listed and positions
    read and put on their grid."""
    manifest = load_manifest(path)
    here = path.resolve().parent
    raw = (here / manifest.raw).resolve()
    if not raw.is_dir():
        raise BeamtimeError(f"{path}: raw: {raw} is not a folder")
    geometry = manifest.geometry
    poni = (here / geometry.poni).resolve()
    mask = (here / geometry.mask).resolve() if geometry.mask else None
    samples = tuple(_sample(path, raw, entry) for entry in manifest.samples)
    header = first_frame(samples)[1]
    pixel = geometry.pixel_size_um
    pixel_m = (pixel[0] * 1e-6, pixel[1] * 1e-6) if pixel else header.pixel_size_m
    return Beamtime(
        root=raw,
        description=path.resolve(),
        poni_path=poni,
        mask_path=mask,
        count_cutoff=geometry.count_cutoff or header.count_cutoff or NO_COUNT_CUTOFF,
        samples=samples,
        metadata=manifest.model_dump(mode="json"),
        pixel_size_m=pixel_m,
        orientation=geometry.orientation,
    )


def _sample(path: Path, raw: Path, entry: SampleEntry) -> SampleScan:
    where = f"{path}: samples.{entry.name}"
    specs = [entry.frames] if isinstance(entry.frames, str) else entry.frames
    files: list[str] = []
    index: list[int] = []
    for spec in specs:
        for name, n in frame_files(raw, spec, where=where):
            if n is None:
                raise BeamtimeError(
                    f"{where}: frames: {raw / split_spec(name)[0]} cannot be opened and its "
                    "number of frames is not known"
                )
            files += [name] * n
            index += range(n)
    xy = read_positions(raw, entry.positions, where=where)
    if len(xy) != len(files):
        raise BeamtimeError(f"{where}: {len(files)} frames but {len(xy)} positions")
    grid, grid_index = grid_from_positions(
        xy, tolerance_um=entry.grid_tolerance_um, where=f"{where}: positions"
    )
    missing = missing_frames(raw, raw, tuple(files), where, item=lambda i: f"point {i}")
    inputs = [raw / split_spec(f)[0] for f in dict.fromkeys(files) if "::" in f]
    if isinstance(entry.positions, CsvPositions):
        inputs.append(raw / entry.positions.file)
    return SampleScan(
        name=entry.name,
        directory=raw,
        frame_format=source_class(Path(split_spec(files[0])[0])).family,
        grid=grid,
        positions_um=xy,
        files=tuple(files),
        frame_index=np.asarray(index, dtype=np.int64),
        missing=missing,
        scan=entry.model_dump(mode="json"),
        metadata_sha256={
            "frames": sha256_json(files),
            "positions": hashlib.sha256(xy.tobytes()).hexdigest(),
        },
        grid_index=grid_index,
        inputs=tuple(inputs),
    )
