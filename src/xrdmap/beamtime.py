"""A beamtime as the pipeline sees it, whatever described it (the folder layout's
``beamtime.json`` or a manifest): geometry files, and per sample its frames, positions
and map grid. Paths stay inside the raw data folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xrdmap.errors import BeamtimeError
from xrdmap.sources import FrameError, FrameRefs, HeaderValues, open_source, split_spec

if TYPE_CHECKING:  # pyFAI (1 s to import) only where an integrator is made
    from xrdmap.integrate import DetectorGeometry

#: PILATUS3 counter overflow value, when beamtime.json (the simulator's PILATUS
#: layout) does not say.
DEFAULT_COUNT_CUTOFF = 1_048_575
#: No cutoff: a manifest whose frames and geometry state none drops no counts (an
#: unsigned value beyond int32 becomes this maximum and is dropped).
NO_COUNT_CUTOFF = 2**31 - 1


@dataclass(frozen=True)
class SampleScan:
    """One sample's scan as the beamline described it."""

    name: str
    directory: Path
    frame_format: str
    grid: tuple[int, int]
    positions_um: np.ndarray  #: (n, 2) x_um, y_um
    files: tuple[str, ...]  #: per point, relative to ``directory``
    frame_index: np.ndarray  #: (n,) index of the frame inside its file
    missing: tuple[int, ...]  #: points whose frame file does not exist
    scan: dict = field(repr=False)
    metadata_sha256: dict[str, str] = field(repr=False)
    grid_index: np.ndarray = field(repr=False)  #: (n, 2) row, col of each point
    inputs: tuple[Path, ...] = field(repr=False)  #: metadata files read (not frames)

    @property
    def n_points(self) -> int:
        return len(self.files)

    def frame_refs(self, start: int, stop: int) -> FrameRefs:
        """Where the frames of points ``start..stop-1`` are: small enough to ship to a task."""
        return FrameRefs(
            directory=self.directory,
            start=start,
            files=self.files[start:stop],
            frame_index=self.frame_index[start:stop],
            missing=frozenset(p for p in self.missing if start <= p < stop),
        )


@dataclass(frozen=True)
class Beamtime:
    """A beamtime as its description (``beamtime.json`` or a manifest) says: geometry,
    mask, samples."""

    root: Path  #: the raw data folder
    description: Path  #: beamtime.json or the manifest
    poni_path: Path
    mask_path: Path | None
    count_cutoff: int
    samples: tuple[SampleScan, ...]
    metadata: dict = field(repr=False)
    pixel_size_m: tuple[float, float] | None = None  #: where the PONI names no detector
    orientation: int | None = None  #: pyFAI image orientation, overriding the PONI's

    def sample(self, name: str) -> SampleScan:
        return next(s for s in self.samples if s.name == name)

    def frames_mb(self, shape: tuple[int, int]) -> float:
        """MB of its frames (of ``shape``) as int32 counts: what ingest reads, integrates
        and writes, whatever the files' compression (a CBF series, NXmx data files
        behind a master's links, a TIFF series of the same frames: the same size)."""
        n = sum(s.n_points - len(s.missing) for s in self.samples)
        return n * shape[0] * shape[1] * 4 / 1e6


def inside(root: Path, candidate: Path, *, what: str) -> Path:
    """``candidate`` resolved, or an error when it lies outside ``root``."""
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BeamtimeError(f"{what}: {candidate} resolves outside the beamtime folder {root}")
    return resolved


def missing_frames(
    root: Path,
    directory: Path,
    files: tuple[str, ...],
    where: str,
    item: Callable[[int], str] = lambda i: f"line {i + 2}",
) -> tuple[int, ...]:
    """Points whose frame file is absent; an error for a path that leaves ``root``.

    Each folder is resolved and listed once (not each of ~10^5 files); only entries that
    are symbolic links are resolved one by one.
    """
    root = root.resolve()
    listings: dict[str, dict[str, os.DirEntry]] = {}
    missing = []
    for i, spec in enumerate(files):
        rel = split_spec(spec)[0]
        parent, name = os.path.split(rel)
        if parent not in listings:
            folder = inside(root, directory / parent, what=f"{where}: {item(i)}: file")
            try:
                listings[parent] = {e.name: e for e in os.scandir(folder)}
            except (FileNotFoundError, NotADirectoryError):
                listings[parent] = {}
        entry = listings[parent].get(name)
        if name in ("", ".", ".."):
            raise BeamtimeError(f"{where}: {item(i)}: file: {rel!r} is not a file name")
        if entry is not None and entry.is_symlink():
            inside(root, Path(entry.path), what=f"{where}: {item(i)}: file")
        if entry is None or not entry.is_file():
            missing.append(i)
    return tuple(missing)


def first_frame(samples: tuple[SampleScan, ...]) -> tuple[tuple[int, int] | None, HeaderValues]:
    """The frame shape and header of the first frame file that opens (None and an
    empty header when none does)."""
    for sample in samples:
        absent = set(sample.missing)
        for point, spec in enumerate(sample.files):
            if point in absent or (point and spec == sample.files[point - 1]):
                continue
            try:
                with open_source(spec, sample.directory) as source:
                    return source.shape, source.header()
            except FrameError:
                continue
    return None, HeaderValues()


def detector_geometry(beamtime: Beamtime) -> DetectorGeometry:
    """What makes the beamtime's integrator: the PONI, mask and count cutoff, and what
    completes the PONI (the frames' shape, pixel size, orientation)."""
    from xrdmap.integrate import DetectorGeometry

    return DetectorGeometry(
        poni_path=beamtime.poni_path,
        mask_path=beamtime.mask_path,
        count_cutoff=beamtime.count_cutoff,
        shape=first_frame(beamtime.samples)[0],
        pixel_size_m=beamtime.pixel_size_m,
        orientation=beamtime.orientation,
    )
