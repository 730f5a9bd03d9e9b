"""Every other single- or multi-frame image format fabio reads: TIFF, EDF, MAR345,
SPE, ADSC, Rigaku, Bruker, ... plain or ``.gz``/``.bz2``."""

from __future__ import annotations

from pathlib import Path

import fabio
import numpy as np

from xrdmap.errors import first_line
from xrdmap.sources.base import (
    STATUS_CORRUPT,
    STATUS_MISSING,
    FrameError,
    FrameSource,
    HeaderValues,
)

#: Header keys (fabio's names per format) that state a pixel size in millimetres.
_PIXEL_MM = (("PixelHeight", "PixelLength"),)
#: ... in micrometres (EDF from ESRF, Eiger/Pilatus TIFF writers).
_PIXEL_UM = (("PSize_2", "PSize_1"),)


class FabioFile(FrameSource):
    """Frames of one file fabio opens; multi-frame files are read frame by frame."""

    family = "fabio"

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        super().__init__(path, dataset)
        if not path.exists():
            raise FrameError(STATUS_MISSING, f"{path}: missing")
        try:
            self._image = fabio.open(str(path))
            first = self._image.data
        except Exception as exc:  # fabio raises many types on a file it cannot parse
            text = first_line(exc)
            raise FrameError(
                STATUS_CORRUPT, f"{path}: fabio cannot read it: {text or type(exc).__name__}"
            ) from None
        if first is None or first.ndim != 2:
            raise FrameError(STATUS_CORRUPT, f"{path}: no 2D image in the file")
        self._shape = (int(first.shape[0]), int(first.shape[1]))
        self._dtype = first.dtype

    def close(self) -> None:
        self._image.close()

    @property
    def n_frames(self) -> int:
        return int(self._image.nframes)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self._shape), self._dtype)
        for k, index in enumerate(range(start, stop)):
            try:
                frame = self._image.data if index == 0 else self._image.getframe(index).data
            except Exception as exc:
                raise FrameError(
                    STATUS_CORRUPT, f"{self.path}: frame {index} unreadable: {exc}"
                ) from None
            if frame.shape != self._shape:
                raise FrameError(
                    STATUS_CORRUPT, f"{self.path}: frame {index} has shape {frame.shape}"
                )
            out[k] = frame
        return out

    def format_name(self) -> str:
        return type(self._image).__name__.removesuffix("Image")

    def compression(self) -> str:
        suffix = self.path.suffix
        outer = f", {suffix[1:]} file" if suffix in (".gz", ".bz2") else ""
        inner = self._image.header.get("Format") or self._image.header.get("compression_type")
        return f"{type(self._image).__name__}{f' ({inner})' if inner else ''}{outer}"

    def header(self) -> HeaderValues:
        head = self._image.header
        values = HeaderValues(detector=type(self._image).__name__.removesuffix("Image"))
        for pairs, scale in ((_PIXEL_MM, 1e-3), (_PIXEL_UM, 1e-6)):
            for slow, fast in pairs:
                try:
                    values.pixel_size_m = (float(head[slow]) * scale, float(head[fast]) * scale)
                except (KeyError, TypeError, ValueError):
                    continue
        values.extra = {
            k: str(v) for k, v in head.items() if k in ("Wavelength", "Distance", "time")
        }
        return values
