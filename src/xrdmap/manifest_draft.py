"""Draft a beamtime manifest from a survey of the raw data (``xrdmap init``).

The draft is checked the way ``process`` will read it (frames listed, positions on a
grid, geometry loaded against the frames) before it is written; the raw data is only
read. Paths in the manifest are relative to the manifest's folder, so the two can move
together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from xrdmap.beamtime import detector_geometry
from xrdmap.errors import BeamtimeError, GeometryError
from xrdmap.manifest import MANIFEST_VERSION, discover_manifest
from xrdmap.survey import FrameSet, Survey, fast_and_slow

#: In ``--positions-csv``: the frame set's folder (relative to the raw folder), so one
#: option names each sample's own table: ``{folder}/positions.csv``.
FOLDER = "{folder}"


@dataclass(frozen=True)
class DraftOptions:
    """What the person running ``init`` said; None: find it in the data."""

    poni: Path | None = None
    geometry_from_header: bool = False
    mask: Path | None = None
    samples: tuple[str, ...] = ()
    steps: tuple[int, int] | None = None  #: rows, cols
    step_um: tuple[float, float] | None = None
    snake: bool = False
    positions_csv: Path | None = None
    columns: tuple[str, str] | None = None  #: x, y of the CSV, or HDF5 motor names
    unit: str | None = None
    pixel_size_um: tuple[float, float] | None = None
    orientation: int | None = None
    count_cutoff: int | None = None


@dataclass
class Draft:
    manifest: dict
    warnings: list[str]
    header_geometry: tuple[Path, AzimuthalIntegrator] | None  #: a PONI to write with it


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` where both lie in one tree below the file system's
    top folder (they can move together), else absolute."""
    path, start = path.resolve(), start.resolve()
    try:
        common = Path(os.path.commonpath([path, start]))
    except ValueError:  # another drive
        return str(path)
    return os.path.relpath(path, start) if len(common.parts) > 1 else str(path)


def _chosen(survey: Survey, names: tuple[str, ...]) -> list[FrameSet]:
    found = {f.name: f for f in survey.framesets}
    if not found:
        problems = "; ".join(survey.unreadable) or "no frame files or frame datasets"
        raise BeamtimeError(f"{survey.root}: nothing to process: {problems}")
    unknown = [n for n in names if n not in found]
    if unknown:
        raise BeamtimeError(
            f"{survey.root}: --sample {', '.join(unknown)}: not found; there are {', '.join(found)}"
        )
    chosen = [found[n] for n in names] if names else list(found.values())
    shapes = {f.shape for f in chosen}
    if len(shapes) > 1:
        listing = "; ".join(f"{f.name} {f.shape[0]}x{f.shape[1]}" for f in chosen)
        raise BeamtimeError(
            f"{survey.root}: frames of different detectors ({listing}): choose with --sample"
        )
    return chosen


def _positions(frameset: FrameSet, survey: Survey, opts: DraftOptions) -> dict:
    if opts.steps:
        if not opts.step_um:
            raise BeamtimeError("--steps needs --step-um X[,Y]")
        rows, cols = opts.steps
        if rows * cols != frameset.n_frames:
            raise BeamtimeError(
                f"{frameset.name}: --steps {rows}x{cols} is {rows * cols} points, "
                f"the frames are {frameset.n_frames}"
            )
        return {
            "source": "steps",
            "rows": rows,
            "cols": cols,
            "step_um": list(opts.step_um),
            "order": "snake" if opts.snake else "raster",
        }
    if opts.positions_csv:
        if not opts.columns:
            raise BeamtimeError("--positions-csv needs --x COLUMN and --y COLUMN")
        table = Path(str(opts.positions_csv).replace(FOLDER, frameset.folder))
        if FOLDER in str(opts.positions_csv):
            table = survey.root / table
        return {
            "source": "csv",
            "file": _relative(table, survey.root),
            "x": opts.columns[0],
            "y": opts.columns[1],
            "unit": opts.unit or "um",
        }
    motors = frameset.motors
    if opts.columns:
        absent = [m for m in opts.columns if m not in motors]
        if absent:
            raise BeamtimeError(
                f"{frameset.name}: motor {', '.join(absent)} does not move with the frames; "
                f"moving: {', '.join(motors) or 'none'}"
            )
        x, y = opts.columns
    else:
        pair = fast_and_slow(motors, survey.root)
        if pair is None:
            raise BeamtimeError(
                f"{frameset.name}: positions: {len(motors)} motors move with the frames "
                f"({', '.join(motors) or 'none'}); give --x MOTOR --y MOTOR, --steps "
                "ROWSxCOLS --step-um X,Y, or --positions-csv FILE --x COL --y COL"
            )
        x, y = pair
    return {"source": "hdf5", "x": motors[x], "y": motors[y], "unit": opts.unit or "mm"}


def header_geometry(frameset: FrameSet, path: Path) -> tuple[AzimuthalIntegrator, str]:
    """A geometry from the frame header (beam centre, distance, wavelength, pixel
    size; no tilt) and the warning that says what it lacks."""
    h = frameset.header
    needed = {
        "wavelength": h.wavelength_m,
        "distance": h.distance_m,
        "beam centre": h.beam_center_px,
        "pixel size": h.pixel_size_m,
    }
    absent = [k for k, v in needed.items() if v is None]
    if absent:
        raise GeometryError(
            f"{frameset.name}: the frame header lacks {', '.join(absent)}: give --poni FILE"
        )
    assert h.pixel_size_m and h.beam_center_px and h.distance_m and h.wavelength_m
    detector = Detector(
        pixel1=h.pixel_size_m[0], pixel2=h.pixel_size_m[1], max_shape=frameset.shape
    )
    ai = AzimuthalIntegrator(detector=detector, wavelength=h.wavelength_m)
    ai.setFit2D(
        h.distance_m * 1e3,
        h.beam_center_px[0],
        h.beam_center_px[1],
        pixelX=h.pixel_size_m[1] * 1e6,
        pixelY=h.pixel_size_m[0] * 1e6,
    )
    return ai, (
        f"geometry from the frame header of {frameset.name} (beam centre, distance, "
        f"wavelength; no tilt), written to {path}: not a calibration; calibrate with "
        "pyFAI-calib2 and give --poni for quantitative work"
    )


def draft_manifest(survey: Survey, out: Path, opts: DraftOptions) -> Draft:
    """A checked manifest for the frame sets of ``survey`` (written by the caller)."""
    here = out.parent
    chosen = _chosen(survey, opts.samples)
    warnings = []
    header = None
    if opts.poni is None:
        if not opts.geometry_from_header:
            raise GeometryError(
                "no geometry: give --poni FILE (a pyFAI calibration), or "
                "--geometry-from-header to use the frame header's values uncalibrated"
            )
        poni = out.with_suffix(".header.poni")
        ai, warning = header_geometry(chosen[0], poni)
        warnings.append(warning)
        header = (poni, ai)
    else:
        poni = opts.poni
    geometry: dict = {"poni": _relative(poni, here)}
    if opts.mask:
        geometry["mask"] = _relative(opts.mask, here)
    for key, value in (
        ("pixel_size_um", list(opts.pixel_size_um) if opts.pixel_size_um else None),
        ("orientation", opts.orientation),
        ("count_cutoff", opts.count_cutoff),
    ):
        if value is not None:
            geometry[key] = value
    manifest = {
        "xrdmap_manifest": MANIFEST_VERSION,
        "raw": _relative(survey.root, here),
        "geometry": geometry,
        "samples": [
            {
                "name": f.name,
                "frames": f.frames,
                "positions": _positions(f, survey, opts),
            }
            for f in chosen
        ],
    }
    return Draft(manifest, warnings, header)


def write_manifest(draft: Draft, out: Path, *, raw: Path, force: bool) -> None:
    """Check the draft as ``process`` reads it, then write it (never inside ``raw``),
    with its header PONI if it has one; nothing is left behind when the check fails."""
    if out.resolve().is_relative_to(raw.resolve()):
        raise BeamtimeError(f"{out}: inside the raw data folder {raw}: write it elsewhere")
    if out.exists() and not force:
        raise BeamtimeError(f"{out}: exists; --force replaces it")
    text = (
        "# xrdmap beamtime manifest (README: Beamtime manifest), written by xrdmap init.\n"
        "# Paths are relative to this file. Check the positions and the geometry.\n"
        + yaml.safe_dump(draft.manifest, sort_keys=False)
    )
    trial = out.with_name(f".{out.name}.draft")
    trial.write_text(text)
    try:
        if draft.header_geometry:
            poni, ai = draft.header_geometry
            poni.unlink(missing_ok=True)  # pyFAI appends to an existing file
            ai.write(str(poni))
        detector_geometry(discover_manifest(trial)).load()
        trial.replace(out)
    except Exception:
        if draft.header_geometry:
            draft.header_geometry[0].unlink(missing_ok=True)
        raise
    finally:
        trial.unlink(missing_ok=True)
