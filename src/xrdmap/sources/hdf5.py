"""Frames in an HDF5/NeXus dataset: NXmx data files, a master's external links, ESRF
BLISS virtual datasets, any dataset path (``file.h5::/entry/data/data``).

Blocks of consecutive frames are read in one slice (HDF5 decodes whole chunks;
hdf5plugin registers the bitshuffle-LZ4 and LZ4 filters DECTRIS detectors write).
Pixels that live in another file (an external link, a virtual dataset's source) are
checked before reading: a missing file quarantines exactly its frames, named, instead
of the fill values HDF5 would silently return.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters)
import numpy as np

from xrdmap.sources.base import (
    STATUS_CORRUPT,
    STATUS_MISSING,
    STATUS_WRONG_SHAPE,
    FrameError,
    FrameSource,
    HeaderValues,
)

#: Where NXmx and the simulator put the frames when no dataset is named.
DEFAULT_DATASET = "/entry/data/data"
#: HDF5 filter ids, in words.
FILTERS = {32008: "bitshuffle-LZ4", 32004: "LZ4", 32001: "Blosc", 32015: "Zstd", 1: "gzip"}
#: NXmx detector group (DECTRIS and Diamond masters).
_DETECTOR = "/entry/instrument/detector"


def broken_link(h5: h5py.File, name: str) -> str | None:
    """The file an external link on the way to ``name`` points to, when it is absent."""
    node: h5py.Group = h5
    for part in [p for p in name.split("/") if p]:
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            target = Path(h5.filename).parent / link.filename
            if not target.exists():
                return str(target)
        try:
            node = node[part]
        except KeyError:
            return None
    return None


#: One HDF5 file open per process at a time, from open to close: two handles of one
#: file in two threads (ingest on threads, or Dask workers with several threads) fail
#: each other's chunk reads and can crash the process (reproduced with h5py: closing
#: one handle invalidates the other's), and h5py runs one call at a time anyway.
_OPEN = threading.RLock()


class Hdf5Dataset(FrameSource):
    """A 3D (frames, slow, fast) or 2D (one frame) dataset of an HDF5 file."""

    family = "hdf5"

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        name = dataset or DEFAULT_DATASET
        super().__init__(path, name)
        _OPEN.acquire()  # released by close(), or below if opening fails
        try:
            self._h5 = h5py.File(path, "r")
        except FileNotFoundError:
            _OPEN.release()
            raise FrameError(STATUS_MISSING, f"{path}: missing") from None
        except OSError as exc:
            _OPEN.release()
            raise FrameError(STATUS_CORRUPT, f"{path}: cannot open HDF5: {exc}") from None
        try:
            try:
                dset = self._h5[name]
            except KeyError:
                target = broken_link(self._h5, name)
                if target:
                    raise FrameError(
                        STATUS_MISSING, f"{path}::{name}: external link to {target}: missing"
                    ) from None
                raise FrameError(STATUS_CORRUPT, f"{path}: {name} not found") from None
            if not isinstance(dset, h5py.Dataset) or dset.ndim not in (2, 3):
                raise FrameError(
                    STATUS_WRONG_SHAPE,
                    f"{path}: {name} is not a 2D or 3D dataset of frames",
                )
        except FrameError:
            self.close()
            raise
        self._dset = dset
        self._one = dset.ndim == 2

    def close(self) -> None:
        if self._h5 is None:
            return
        try:
            self._h5.close()
        finally:
            self._h5 = None
            _OPEN.release()

    @property
    def n_frames(self) -> int:
        return 1 if self._one else int(self._dset.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        s = self._dset.shape
        return (int(s[-2]), int(s[-1]))

    @property
    def dtype(self) -> np.dtype:
        return self._dset.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop > self.n_frames:
            raise FrameError(
                STATUS_MISSING,
                f"{self.path}::{self.dataset}: frame {stop - 1} beyond {self.n_frames} frames",
            )
        try:
            if self._one:
                return self._dset[()][None]
            return self._dset[start:stop]
        except (OSError, ValueError) as exc:
            raise FrameError(
                STATUS_CORRUPT,
                f"{self.path}::{self.dataset}: frames {start}..{stop - 1} unreadable: {exc}",
            ) from None

    def checksums(self, start: int, block: np.ndarray) -> list[str]:
        """SHA-256 of each frame's stored (compressed) chunk where a chunk holds one
        frame (DECTRIS, LIMA): the file's own bytes, 5-10x fewer than the pixels; else
        of the pixels."""
        dset = self._dset
        if self._one or dset.is_virtual or dset.chunks != (1, *self.shape):
            return super().checksums(start, block)
        try:
            return [
                "sha256-chunk:"
                + hashlib.sha256(dset.id.read_direct_chunk((start + i, 0, 0))[1]).hexdigest()
                for i in range(len(block))
            ]
        except (OSError, ValueError):  # a chunk never written (fill value)
            return super().checksums(start, block)

    def missing_frames(self) -> dict[int, str]:
        if not self._dset.is_virtual:
            return {}
        missing: dict[int, str] = {}
        for source in self._dset.virtual_sources():
            first, last = (b[0] for b in source.vspace.get_select_bounds())
            if source.file_name == ".":
                target = broken_link(self._h5, source.dset_name)
            else:
                candidate = self.path.parent / source.file_name
                target = None if candidate.exists() else str(candidate)
            if target:
                for frame in range(first, last + 1):
                    missing[frame] = (
                        f"{self.path}::{self.dataset}: frame {frame}: source file {target} missing"
                    )
        return missing

    def compression(self) -> str:
        plist = self._dset.id.get_create_plist()
        names = [
            FILTERS.get(plist.get_filter(i)[0], str(plist.get_filter(i)[0]))
            for i in range(plist.get_nfilters())
        ]
        layout = "virtual dataset" if self._dset.is_virtual else f"chunks {self._dset.chunks}"
        return f"{'+'.join(names) or 'uncompressed'}, {layout}"

    def header(self) -> HeaderValues:
        values = HeaderValues()
        det = self._h5.get(_DETECTOR)
        if not isinstance(det, h5py.Group):
            return values

        x, y = _si(det, "x_pixel_size", "m"), _si(det, "y_pixel_size", "m")
        if x and y:
            values.pixel_size_m = (y, x)
        values.distance_m = _si(det, "detector_distance", "m")
        bx, by = _si(det, "beam_center_x", "pixel"), _si(det, "beam_center_y", "pixel")
        if bx is not None and by is not None:
            values.beam_center_px = (bx, by)
        beam = self._h5.get("/entry/instrument/beam")
        if isinstance(beam, h5py.Group):
            values.wavelength_m = _si(beam, "incident_wavelength", "angstrom")
        if "description" in det:
            values.detector = as_text(det["description"][()])
        cutoff = _si(det, "saturation_value", "counts")
        if cutoff:
            values.count_cutoff = int(cutoff)
        return values


#: Metres per unit, for the units NeXus files state.
_METRES = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "nm": 1e-9, "angstrom": 1e-10, "A": 1e-10}


def _si(group: h5py.Group, key: str, default_unit: str) -> float | None:
    """A scalar field in SI units (its ``units`` attribute, else ``default_unit``)."""
    try:
        value = float(np.asarray(group[key][()]).ravel()[0])
    except (KeyError, TypeError, ValueError, IndexError, OSError):
        return None
    unit = as_text(group[key].attrs.get("units", default_unit))
    return value * _METRES.get(unit, 1.0)


def as_text(value: object) -> str:
    """An HDF5 string value (bytes, str, a one-element array) as str."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return as_text(value.ravel()[0])
    return str(value)
