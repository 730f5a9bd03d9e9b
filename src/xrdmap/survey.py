"""What a raw data path holds, found without being told: frame files and HDF5 frame
datasets grouped into candidate samples, their format, shape, compression, header
values, the motors that move with the frames, and what is missing.

``xrdmap describe`` prints a survey; ``xrdmap init`` drafts a manifest from one.
Nothing is written and nothing is read beyond headers and metadata.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from xrdmap.beamtime import NO_COUNT_CUTOFF, Beamtime
from xrdmap.errors import BeamtimeError
from xrdmap.manifest import frame_files
from xrdmap.sources import FrameError, FrameSource, HeaderValues, open_source, source_class
from xrdmap.sources.hdf5 import Hdf5Dataset, as_text

#: Name endings of detector frame files (every family the sources read).
FRAME_SUFFIXES = (
    ".cbf", ".cbf.gz", ".cbf.bz2", ".tif", ".tiff", ".edf", ".edf.gz", ".edf.bz2",
    ".mar2300", ".mar3450", ".mar345", ".mccd", ".spe", ".img", ".sfrm", ".gfrm", ".h5",
    ".hdf5", ".hdf", ".nxs", ".nx5",
)  # fmt: skip
#: Per-point records that are clocks or counters, not motors.
NOT_MOTORS = re.compile(r"^(epoch|elapsed_time|timer|time|sec|.*_ctime|.*_counts?|mon.*|i0|it)$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class FrameSet:
    """One candidate sample: frames that belong together."""

    name: str  #: a sample name suggestion
    frames: str | list[str]  #: manifest ``frames`` spec, relative to the survey root
    folder: str  #: where the frames are, relative to the survey root
    n_frames: int
    n_files: int
    format: str
    shape: tuple[int, int]
    dtype: str
    compression: str
    header: HeaderValues
    missing: list[str] = field(default_factory=list)  #: absent files holding frames
    motors: dict[str, str] = field(default_factory=dict)  #: name -> file::dataset, 1D
    snapshot: dict[str, float] = field(default_factory=dict)  #: motors that did not move


@dataclass
class Survey:
    root: Path  #: the raw data folder (a manifest's ``raw``)
    framesets: list[FrameSet]
    unreadable: list[str]  #: files that look like frames but do not open, and why
    not_frames: list[str] = field(default_factory=list)  #: images that are no frames
    followed: list[str] = field(default_factory=list)  #: files described through links


def sample_name(text: str) -> str:
    """A sample name from a folder or file name (letters, digits, _ . -)."""
    name = _NOT_NAME.sub("_", text).strip("_.-")
    return name or "sample"


def _is_frame_file(name: str) -> bool:
    return name.lower().endswith(FRAME_SUFFIXES)


def survey(path: str | Path) -> Survey:
    """Survey a folder (recursively), one frame file or one HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise BeamtimeError(f"{path}: no such file or folder")
    if path.is_file() and not _is_frame_file(path.name):
        raise BeamtimeError(
            f"{path}: not a frame or HDF5 file (by its name: {', '.join(FRAME_SUFFIXES)})"
        )
    root = path if path.is_dir() else path.parent
    files = (
        [Path(d) / f for d, _, names in sorted(os.walk(path)) for f in sorted(names)]
        if path.is_dir()
        else [path]
    )
    files = [f for f in files if _is_frame_file(f.name)]
    hdf5 = [f for f in files if source_class(f) is Hdf5Dataset]
    referenced = {p for f in hdf5 for p in _referenced_files(f)}
    out = Survey(root=root.resolve(), framesets=[], unreadable=[])
    for f in hdf5:
        if f.resolve() not in referenced:
            _survey_hdf5(out, f)
    series: dict[tuple[Path, str, str], list[Path]] = defaultdict(list)
    for f in files:
        if f not in hdf5:
            suffix = f.name[-len(_suffix(f.name)) :]
            prefix = re.sub(r"\d+$", "", f.name[: -len(suffix)])
            series[(f.parent, prefix, suffix)].append(f)
    for (folder, prefix, suffix), members in sorted(series.items()):
        name = prefix.strip("_.-") or folder.name  # the files' own name, else the folder's
        _survey_series(out, folder, f"{prefix}*{suffix}", sample_name(name), members)
    if hdf5 and not path.is_dir() and not out.framesets:
        _survey_linked(out, path)
    return out


#: How many files of external links deep a file named alone is followed: a BLISS
#: proposal file links to sample files, which link to dataset files, which hold scans.
LINK_DEPTH = 3


def _survey_linked(out: Survey, path: Path) -> None:
    """An HDF5 file without frames of its own, named alone (a BLISS proposal or sample
    file): the frames of the files its external links lead to, within its folder."""
    seen = {path.resolve()}
    level = [path]
    for _ in range(LINK_DEPTH):
        linked = sorted({f for each in level for f in _external_files(each)} - seen)
        seen.update(linked)
        level = []
        for f in linked:
            if not f.is_file():
                out.unreadable.append(f"{f}: linked from {path.name}, missing")
            elif not f.is_relative_to(out.root):
                out.unreadable.append(
                    f"{f}: linked from {path.name}, outside its folder; describe it itself"
                )
            else:
                before = len(out.framesets)
                _survey_hdf5(out, f)
                if len(out.framesets) > before:
                    out.followed.append(str(f.relative_to(out.root)))
                else:
                    level.append(f)


def _external_files(path: Path) -> set[Path]:
    """The files ``path``'s external links lead to, wherever they are in it."""
    found: set[Path] = set()

    def visit(_: str, link: object) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.add((path.parent / link.filename).resolve())

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems_links(visit)
    except OSError:
        pass
    return found


def _suffix(name: str) -> str:
    lower = name.lower()
    return max((s for s in FRAME_SUFFIXES if lower.endswith(s)), key=len)


def _survey_series(out: Survey, folder: Path, glob: str, name: str, members: list[Path]) -> None:
    rel_folder = folder.resolve().relative_to(out.root)
    pattern = str(rel_folder / glob)
    try:
        with open_source(members[0]) as src:
            first = _describe_source(src)
    except FrameError as err:
        out.unreadable.append(err.reason)
        return
    if len(members) == 1 and np.dtype(first["dtype"]).itemsize == 1:
        out.not_frames.append(f"{members[0]}: an 8-bit image (a mask?), not detector frames")
        return
    # one file surveyed alone is a set of its own, not the series its name belongs to
    frames = pattern if len(members) > 1 else str(rel_folder / members[0].name)
    counts = frame_files(out.root, frames, where=str(folder))
    out.framesets.append(
        FrameSet(
            name=name,
            frames=frames,
            folder=str(rel_folder),
            n_frames=sum(n or 0 for _, n in counts),
            n_files=len(members),
            **first,
        )
    )


def _describe_source(src: FrameSource) -> dict:
    return {
        "format": src.format_name(),
        "shape": src.shape,
        "dtype": str(src.dtype),
        "compression": src.compression(),
        "header": src.header(),
    }


def _referenced_files(path: Path) -> set[Path]:
    """Files whose frames ``path`` points to (external links, virtual sources)."""
    found: set[Path] = set()
    try:
        with h5py.File(path, "r") as h5:
            data = h5.get("/entry/data")
            if isinstance(data, h5py.Group):  # an NXmx master's data files
                for key in data:
                    link = data.get(key, getlink=True)
                    if isinstance(link, h5py.ExternalLink):
                        found.add((path.parent / link.filename).resolve())
            for dset in _frame_datasets(h5):
                if dset.is_virtual:
                    for src in dset.virtual_sources():
                        if src.file_name != ".":
                            found.add((path.parent / src.file_name).resolve())
    except OSError:
        pass
    return found


def _frame_datasets(h5: h5py.File) -> list[h5py.Dataset]:
    """3D integer datasets that look like stacks of detector frames."""
    out: list[h5py.Dataset] = []

    def visit(name: str, obj: object) -> None:
        if (
            isinstance(obj, h5py.Dataset)
            and obj.ndim == 3
            and np.issubdtype(obj.dtype, np.integer)
            and min(obj.shape[1:]) >= 16
        ):
            out.append(obj)

    h5.visititems(visit)
    return out


def _survey_hdf5(out: Survey, path: Path) -> None:
    rel = str(path.resolve().relative_to(out.root))
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        out.unreadable.append(f"{path}: cannot open HDF5: {exc}")
        return
    with h5:
        data = h5.get("/entry/data")
        group = data if isinstance(data, h5py.Group) else {}
        links = [k for k in group if k.startswith("data_")]
        if links and "data" not in group:  # an NXmx master: data_000001, data_000002...
            specs = [f"{rel}::/entry/data/data_*"]
        else:
            specs = [f"{rel}::{d.name}" for d in _frame_datasets(h5)]
        for spec in specs:
            _survey_dataset(out, path, h5, spec)


def _survey_dataset(out: Survey, path: Path, h5: h5py.File, spec: str) -> None:
    counts = frame_files(out.root, spec, where=str(path))
    described = None
    missing: list[str] = []
    for each, _ in counts:
        try:
            with open_source(each, out.root) as src:
                described = described or _describe_source(src)
                missing += sorted(set(_missing_file(r) for r in src.missing_frames().values()))
        except FrameError as err:
            missing.append(err.reason)
    n = sum(c or 0 for _, c in counts)
    dataset = spec.split("::", 1)[1]
    top = "/" + dataset.strip("/").split("/")[0]
    if described is None:  # no data file opens: the master's own values
        described = {
            "format": "hdf5 (NXmx master, no data file opens)",
            "shape": _master_shape(h5),
            "dtype": "?",
            "compression": "?",
            "header": _master_header(h5),
        }
    scan = "" if top == "/entry" else "_" + top.strip("/")
    motors, snapshot = _motors(h5, top, n, spec.split("::")[0])
    out.framesets.append(
        FrameSet(
            name=sample_name(path.name.split(".")[0].removesuffix("_master") + scan),
            frames=spec,
            folder=str(Path(spec.split("::")[0]).parent),
            n_frames=n,
            n_files=len(counts),
            missing=missing,
            motors=motors,
            snapshot=snapshot,
            **described,
        )
    )


def _missing_file(reason: str) -> str:
    match = re.search(r"source file (\S+) missing", reason)
    return match.group(1) if match else reason


def _master_shape(h5: h5py.File) -> tuple[int, int]:
    """(slow, fast) pixels a DECTRIS master states; (0, 0) when it does not."""
    spec = "/entry/instrument/detector/detectorSpecific"
    try:
        return (
            int(h5[f"{spec}/y_pixels_in_detector"][()]),
            int(h5[f"{spec}/x_pixels_in_detector"][()]),
        )
    except (KeyError, TypeError, ValueError):
        return (0, 0)


def _master_header(h5: h5py.File) -> HeaderValues:
    """The NXmx header values of a master whose data files are all absent."""
    for name in (
        "/entry/instrument/detector/pixel_mask",
        "/entry/instrument/detector/detectorSpecific/pixel_mask",
    ):
        if name in h5:
            with Hdf5Dataset(Path(h5.filename), name) as src:
                return src.header()
    return HeaderValues()


def _motors(h5: h5py.File, top: str, n: int, rel: str) -> tuple[dict[str, str], dict[str, float]]:
    """1D records of length ``n`` that move (per-point positions) and scalar
    positioners (a snapshot), in a scan's ``measurement`` and ``instrument/positioners``
    (BLISS) or ``sample/transformations`` (NXmx)."""
    motors: dict[str, str] = {}
    snapshot: dict[str, float] = {}
    for group_name in ("measurement", "instrument/positioners", "sample/transformations"):
        group = h5.get(f"{top}/{group_name}")
        if not isinstance(group, h5py.Group):
            continue
        for key in group:
            item = group.get(key)
            if not isinstance(item, h5py.Dataset) or not np.issubdtype(item.dtype, np.number):
                continue
            if item.ndim == 0:
                snapshot.setdefault(key, float(item[()]))
            elif (
                item.ndim == 1
                and item.shape[0] == n
                and not NOT_MOTORS.match(key)
                and as_text(item.attrs.get("transformation_type", "translation")) == "translation"
                and not key.endswith(("_end", "_increment_set"))
            ):
                values = item[()]
                if np.ptp(values) > 0 and key not in motors:
                    motors[key] = f"{rel}::{item.name}"
    return motors, snapshot


def fast_and_slow(motors: dict[str, str], root: Path) -> tuple[str, str] | None:
    """Of two moving motors, (fast, slow): the fast one changes between more
    consecutive points. None unless exactly two move."""
    if len(motors) != 2:
        return None
    changes = {}
    for name, spec in motors.items():
        file, dataset = spec.split("::", 1)
        with h5py.File(root / file, "r") as h5:
            values = h5[dataset][()]
        changes[name] = int(np.count_nonzero(np.abs(np.diff(values)) > 1e-9))
    fast, slow = sorted(motors, key=lambda k: -changes[k])
    return fast, slow


def _header_line(h: HeaderValues) -> str:
    parts = []
    if h.detector:
        parts.append(h.detector)
    if h.pixel_size_m:
        parts.append(f"pixel {h.pixel_size_m[0] * 1e6:.4g} x {h.pixel_size_m[1] * 1e6:.4g} um")
    if h.wavelength_m:
        parts.append(f"wavelength {h.wavelength_m * 1e10:.5g} A")
    if h.distance_m:
        parts.append(f"distance {h.distance_m * 1e3:.5g} mm")
    if h.beam_center_px:
        parts.append(f"beam centre ({h.beam_center_px[0]:.1f}, {h.beam_center_px[1]:.1f}) px")
    if h.count_cutoff:
        parts.append(f"count cutoff {h.count_cutoff}")
    return "; ".join(parts) or "no instrument values"


def summary_lines(found: Survey) -> list[str]:
    """What ``xrdmap describe`` prints: a few lines per frame set, then what is missing
    and how to supply it."""
    n = len(found.framesets)
    lines = [f"{found.root}: {n} frame set{'s' if n != 1 else ''}"]
    if found.followed:
        lines.append(f"  (through external links, in {', '.join(found.followed)})")
    for f in found.framesets:
        files = f"{f.n_files} file{'s' if f.n_files != 1 else ''}"
        frames = f"{f.n_frames} frame{'s' if f.n_frames != 1 else ''}"
        lines.append(f"{f.name}: {frames} in {files}: {f.frames}")
        if f.dtype != "?":
            lines.append(
                f"  format {f.format}, {f.shape[0]} x {f.shape[1]} {f.dtype}, {f.compression}"
            )
        elif f.shape != (0, 0):
            lines.append(f"  format {f.format}, {f.shape[0]} x {f.shape[1]} pixels")
        lines.append(f"  header: {_header_line(f.header)}")
        if f.motors:
            pair = fast_and_slow(f.motors, found.root)
            use = f" (x = {pair[0]}, y = {pair[1]})" if pair else ""
            lines.append(f"  positions: moving with the frames: {', '.join(f.motors)}{use}")
        else:
            lines.append(
                "  positions: none in the files: init needs --steps ROWSxCOLS --step-um X,Y "
                "[--snake] or --positions-csv FILE --x COL --y COL"
            )
        if f.snapshot:
            lines.append(f"  positioners (not moving): {len(f.snapshot)} motors")
        for missing in f.missing:
            lines.append(f"  missing: {missing}")
        if f.header.count_cutoff is None:
            lines.append("  count cutoff: not stated; none applied unless init --count-cutoff N")
        if f.header.pixel_size_m is None:
            lines.append(
                "  pixel size: not in the header; needed unless the PONI names the "
                "detector: init --pixel-size-um P"
            )
    for problem in found.unreadable:
        lines.append(f"unreadable: {problem}")
    for other in found.not_frames:
        lines.append(f"skipped: {other}")
    if n:
        lines.append(
            "geometry: init needs --poni FILE (a pyFAI calibration), or "
            "--geometry-from-header (the header's values, uncalibrated)"
        )
    return lines


def beamtime_lines(beamtime: Beamtime) -> list[str]:
    """What ``xrdmap describe`` prints for a manifest or a beamtime folder: what
    ``process`` will read."""
    n = len(beamtime.samples)
    cutoff = "none" if beamtime.count_cutoff == NO_COUNT_CUTOFF else beamtime.count_cutoff
    lines = [
        f"{beamtime.description}: {n} sample{'s' if n != 1 else ''}, raw data in {beamtime.root}",
        f"geometry: {beamtime.poni_path}; mask: {beamtime.mask_path or 'none'}; "
        f"count cutoff: {cutoff}",
    ]
    for s in beamtime.samples:
        missing = f", {len(s.missing)} frame files missing" if s.missing else ""
        lines.append(
            f"{s.name}: {s.n_points} points on {s.grid[0]} x {s.grid[1]}, "
            f"{len(dict.fromkeys(s.files))} {s.frame_format} files{missing}"
        )
    return lines
