"""Find the samples of a beamtime folder and check their scan metadata.

A beamtime folder holds ``beamtime.json`` (geometry and mask file names, sample list,
frame format, detector count cutoff) and, per sample, ``scan.json`` (grid, steps) and
``points.csv`` (point, row, col, x_um, y_um, file, frame). Frame files are referred to
relative to the sample folder; a path that resolves outside the beamtime folder is
refused. Frames that should exist but do not are reported, not fatal: the pipeline
quarantines those points.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from xrdmap.beamtime import (
    DEFAULT_COUNT_CUTOFF,
    Beamtime,
    SampleScan,
    inside,
    missing_frames,
)
from xrdmap.errors import BeamtimeError
from xrdmap.hashing import sha256_file
from xrdmap.manifest import discover_manifest
from xrdmap.sources import source_class, split_spec
from xrdmap.tables import read_csv_table

#: Marker files a beamline writes last: one per sample, one per beamtime.
SCAN_COMPLETE = "SCAN_COMPLETE"
BEAMTIME_COMPLETE = "BEAMTIME_COMPLETE"
POINTS_COLUMNS = ("point", "row", "col", "x_um", "y_um", "file", "frame")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BeamtimeError(f"{path}: missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BeamtimeError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BeamtimeError(f"{path}: expected a JSON object")
    return data


def _read_points(path: Path, grid: tuple[int, int]) -> pd.DataFrame:
    points = read_csv_table(path, POINTS_COLUMNS, dtype={"file": str}, error=BeamtimeError)
    n = grid[0] * grid[1]
    if len(points) != n:
        raise BeamtimeError(f"{path}: {len(points)} points, scan.json grid says {n}")
    if not (points["point"].to_numpy() == np.arange(n)).all():
        raise BeamtimeError(f"{path}: point: must number the rows 0..{n - 1} in order")
    for col in ("x_um", "y_um", "row", "col", "frame"):
        values = pd.to_numeric(points[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise BeamtimeError(
                f"{path}: line {line}: {col}: '{points[col].iloc[line - 2]}' is not a finite number"
            )
    if points["file"].isna().any():
        line = int(np.flatnonzero(points["file"].isna())[0]) + 2
        raise BeamtimeError(f"{path}: line {line}: file: empty")
    return points


def discover_beamtime(root: str | Path, *, require_complete: bool = True) -> Beamtime:
    """Read a beamtime's description and check every sample's frame list: ``root`` is a
    manifest file (``xrdmap init``) or a folder with ``beamtime.json``."""
    root = Path(root)
    if root.is_file():
        return discover_manifest(root)
    if not root.is_dir():
        raise BeamtimeError(f"{root}: not a folder")
    path = root / "beamtime.json"
    meta = _read_json(path)
    for key in ("geometry", "samples"):
        if key not in meta:
            raise BeamtimeError(f"{path}: {key}: missing")
    if not isinstance(meta["geometry"], str) or not meta["geometry"]:
        raise BeamtimeError(f"{path}: geometry: give the PONI file's name (a string)")
    poni = inside(root, root / meta["geometry"], what=f"{path}: geometry")
    mask = None
    if meta.get("mask") is not None:
        if not isinstance(meta["mask"], str):
            raise BeamtimeError(f"{path}: mask: give the mask file's name (a string) or null")
        mask = inside(root, root / meta["mask"], what=f"{path}: mask")
    cutoff = _count_cutoff(path, meta)
    samples = []
    for name in _sample_names(path, meta["samples"]):
        directory = inside(root, root / name, what=f"{root / 'beamtime.json'}: samples")
        if require_complete and not (directory / SCAN_COMPLETE).exists():
            raise BeamtimeError(f"{directory}: scan not complete ({SCAN_COMPLETE} missing)")
        samples.append(_discover_sample(root, directory, name, meta))
    return Beamtime(
        root=root.resolve(),
        description=path.resolve(),
        poni_path=poni,
        mask_path=mask,
        count_cutoff=cutoff,
        samples=tuple(samples),
        metadata=meta,
    )


#: A sample name is a folder name: no hidden or path-like names.
_SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sample_names(path: Path, names: object) -> list[str]:
    """The ``samples`` list of beamtime.json, checked: non-empty, distinct names that
    can be a folder and a store group."""
    if not isinstance(names, list) or not names:
        raise BeamtimeError(f"{path}: samples: give a non-empty list of sample folder names")
    for name in names:
        if not isinstance(name, str) or not _SAMPLE_NAME.match(name):
            raise BeamtimeError(
                f"{path}: samples: {name!r} is not a sample folder name "
                "(letters, digits, _ . -; not starting with . or -)"
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BeamtimeError(f"{path}: samples: {', '.join(twice)} listed twice")
    return names


def _count_cutoff(path: Path, meta: dict) -> int:
    """The detector's count cutoff (counts at and above it are not measured)."""
    instrument = meta.get("instrument", {})
    if not isinstance(instrument, dict):
        raise BeamtimeError(f"{path}: instrument: expected an object")
    value = instrument.get("count_cutoff", DEFAULT_COUNT_CUTOFF)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BeamtimeError(
            f"{path}: instrument.count_cutoff: {value!r} is not a positive number of counts"
        )
    return value


def _discover_sample(root: Path, directory: Path, name: str, meta: dict) -> SampleScan:
    scan_path = directory / "scan.json"
    scan = _read_json(scan_path)
    try:
        rows, cols = scan["grid"]["rows"], scan["grid"]["cols"]
    except (KeyError, TypeError):
        raise BeamtimeError(f"{scan_path}: grid: needs integer rows and cols") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rows, cols)):
        raise BeamtimeError(f"{scan_path}: grid: rows and cols must be integers")
    grid = (rows, cols)
    if min(grid) <= 0:
        raise BeamtimeError(f"{scan_path}: grid: rows and cols must be positive")
    points_path = inside(
        root,
        directory / str(scan.get("points_file", "points.csv")),
        what=f"{scan_path}: points_file",
    )
    points = _read_points(points_path, grid)
    files = tuple(points["file"].astype(str))
    missing = missing_frames(root, directory, files, str(points_path))
    grid_index = points[["row", "col"]].to_numpy(dtype=np.int64)
    outside = (grid_index < 0).any(axis=1) | (grid_index >= np.asarray(grid)).any(axis=1)
    if outside.any():
        line = int(np.flatnonzero(outside)[0]) + 2
        raise BeamtimeError(f"{points_path}: line {line}: row, col: outside the {grid} grid")
    return SampleScan(
        name=name,
        directory=directory,
        frame_format=source_class(Path(split_spec(files[0])[0])).family,
        grid=grid,
        positions_um=points[["x_um", "y_um"]].to_numpy(dtype=np.float64),
        files=files,
        frame_index=points["frame"].to_numpy(dtype=np.int64),
        missing=tuple(missing),
        scan=scan,
        metadata_sha256={p.name: sha256_file(p) for p in (scan_path, points_path)},
        grid_index=grid_index,
        inputs=(directory, scan_path, points_path),
    )
