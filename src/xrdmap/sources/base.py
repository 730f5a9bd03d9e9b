"""The frame-source interface: one file (or HDF5 dataset) of detector frames, read-only.

A new detector format is one subclass of :class:`FrameSource` registered in
:mod:`xrdmap.sources.registry`: it says how many frames the file holds, their shape and
type, reads a block of consecutive frames and, where the file says so, the instrument
values in its header (pixel size, wavelength, distance, beam centre).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import numpy as np

#: Per-point status codes stored with the patterns.
STATUS_OK = 0
STATUS_MISSING = 1
STATUS_CORRUPT = 2
STATUS_WRONG_SHAPE = 3
STATUS_NONFINITE = 4
STATUS_PENDING = 255
STATUS_MEANING = {
    STATUS_OK: "ok",
    STATUS_MISSING: "frame file missing",
    STATUS_CORRUPT: "frame unreadable or corrupt",
    STATUS_WRONG_SHAPE: "frame has the wrong shape or type",
    STATUS_NONFINITE: "integration gave values that are not finite",
    STATUS_PENDING: "not processed yet",
}
#: ``file.h5::/entry/data/data``: a file and, for HDF5, the dataset inside it.
DATASET_SEPARATOR = "::"


class FrameError(Exception):
    """A frame that cannot be used; the message says why (it is quarantined)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class HeaderValues:
    """Instrument values a file's header states (SI units); None where it is silent."""

    detector: str | None = None
    pixel_size_m: tuple[float, float] | None = None  #: (slow axis, fast axis)
    wavelength_m: float | None = None
    distance_m: float | None = None
    beam_center_px: tuple[float, float] | None = None  #: (fast x, slow y), pixels
    count_cutoff: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"scan.h5::/entry/data/data"`` -> ("scan.h5", "/entry/data/data"); a plain
    file name -> (name, None)."""
    if DATASET_SEPARATOR in spec:
        name, dataset = spec.split(DATASET_SEPARATOR, 1)
        return name, dataset or None
    return spec, None


def frame_sha256(frame: np.ndarray) -> str:
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest()


class FrameSource(ABC):
    """Frames of one file. Open with ``with Source(path, dataset) as src``; every error
    is a :class:`FrameError` naming the file."""

    #: What ``describe`` calls the format.
    family: ClassVar[str]

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        self.path = path
        self.dataset = dataset

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027  (most sources hold nothing open)
        """Release the file."""

    @property
    @abstractmethod
    def n_frames(self) -> int:
        """Frames in the file (or dataset)."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, int]:
        """(slow, fast) pixels of one frame."""

    @property
    @abstractmethod
    def dtype(self) -> np.dtype:
        """The stored pixel type."""

    @abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` as a (k, slow, fast) array of :attr:`dtype`."""

    def checksums(self, start: int, block: np.ndarray) -> list[str]:
        """One identity per frame of ``block`` (read from ``start``): the detector's own
        checksum where the format has one, else SHA-256 of the pixels."""
        return [frame_sha256(frame) for frame in block]

    def missing_frames(self) -> dict[int, str]:
        """Frames whose pixels live in another file that is absent, with the reason."""
        return {}

    def header(self) -> HeaderValues:
        """Instrument values stated by the file."""
        return HeaderValues()

    def compression(self) -> str:
        """How the pixels are compressed, in words."""
        return "unknown"

    def format_name(self) -> str:
        """The file format, in words."""
        return self.family
