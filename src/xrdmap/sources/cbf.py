"""miniCBF frames (PILATUS/EIGER convention), plain or ``.gz``/``.bz2``.

The binary section is checked against its own ``Content-MD5`` and decoded with fabio's
byte-offset decoder; the header is parsed only for what decoding needs and for the
PILATUS header lines (pixel size, wavelength, distance, beam centre, count cutoff).
Anything unusual (another compression) falls back to ``fabio.open``.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import re
from pathlib import Path

import fabio
import fabio.ext.byte_offset as byte_offset
import numpy as np

from xrdmap.sources.base import (
    STATUS_CORRUPT,
    STATUS_MISSING,
    FrameError,
    FrameSource,
    HeaderValues,
)

_CBF_START = b"\x0c\x1a\x04\xd5"
_HEADER_FIELD = re.compile(rb"(X-Binary-[A-Za-z-]+|Content-MD5|conversions)[:=]\s*\"?([^\"\r\n;]+)")
_NUMBER = r"([-+0-9.eE]+)"
_PILATUS_LINES = {
    "detector": re.compile(r"#\s*Detector:\s*([^\r\n]+)"),
    "pixel": re.compile(rf"#\s*Pixel_size\s+{_NUMBER}\s*m\s*x\s*{_NUMBER}\s*m"),
    "wavelength": re.compile(rf"#\s*Wavelength\s+{_NUMBER}\s*A"),
    "distance": re.compile(rf"#\s*Detector_distance\s+{_NUMBER}\s*m"),
    "beam": re.compile(rf"#\s*Beam_xy\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*pixels"),
    "cutoff": re.compile(rf"#\s*Count_cutoff\s+{_NUMBER}\s*counts"),
}
_OPENERS = {".gz": gzip.decompress, ".bz2": bz2.decompress}


class CbfFile(FrameSource):
    """One miniCBF frame per file."""

    family = "cbf"

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        super().__init__(path, dataset)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise FrameError(STATUS_MISSING, f"{path}: missing") from None
        except OSError as exc:
            raise FrameError(STATUS_CORRUPT, f"{path}: cannot read: {exc.strerror}") from None
        if path.suffix in _OPENERS:
            try:
                raw = _OPENERS[path.suffix](raw)
            except (OSError, EOFError, ValueError) as exc:
                raise FrameError(
                    STATUS_CORRUPT, f"{path}: cannot decompress ({path.suffix}): {exc}"
                ) from None
        start = raw.find(_CBF_START)
        if start < 0:
            raise FrameError(STATUS_CORRUPT, f"{path}: no CBF binary section")
        self._head = raw[:start].decode("latin-1")
        fields = {k.decode(): v.decode().strip() for k, v in _HEADER_FIELD.findall(raw[:start])}
        try:
            size = int(fields["X-Binary-Size"])
            n_fast = int(fields["X-Binary-Size-Fastest-Dimension"])
            n_slow = int(fields["X-Binary-Size-Second-Dimension"])
        except (KeyError, ValueError):
            raise FrameError(STATUS_CORRUPT, f"{path}: CBF binary header incomplete") from None
        self._blob = raw[start + 4 : start + 4 + size]
        if len(self._blob) < size:
            raise FrameError(
                STATUS_CORRUPT, f"{path}: truncated ({len(self._blob)} of {size} bytes)"
            )
        self._md5 = fields.get("Content-MD5")
        self._byte_offset = "x-CBF_BYTE_OFFSET" in fields.get("conversions", "x-CBF_BYTE_OFFSET")
        self._shape = (n_slow, n_fast)

    @property
    def n_frames(self) -> int:
        return 1

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int32)

    def read(self, start: int, stop: int) -> np.ndarray:
        if (start, stop) != (0, 1):
            raise FrameError(STATUS_CORRUPT, f"{self.path}: frame {start} beyond 1 frame")
        md5 = self._md5
        if md5 and base64.b64encode(hashlib.md5(self._blob).digest()).decode() != md5:
            raise FrameError(STATUS_CORRUPT, f"{self.path}: Content-MD5 mismatch (corrupt data)")
        if not self._byte_offset:
            return self._read_with_fabio()[None]
        n = self._shape[0] * self._shape[1]
        try:
            frame = np.asarray(byte_offset.dec_cbf32(self._blob, n), dtype=np.int32)
        except Exception as exc:
            raise FrameError(
                STATUS_CORRUPT, f"{self.path}: byte-offset decoding failed: {exc}"
            ) from None
        if frame.size != n:  # a damaged byte shifts the decoding
            raise FrameError(
                STATUS_CORRUPT,
                f"{self.path}: byte-offset data decode to {frame.size} pixels, not {n} "
                "(corrupt data)",
            )
        return frame.reshape(1, *self._shape)

    def _read_with_fabio(self) -> np.ndarray:
        try:
            data = fabio.open(str(self.path)).data
        except Exception as exc:
            raise FrameError(STATUS_CORRUPT, f"{self.path}: fabio cannot read it: {exc}") from None
        return np.asarray(data)

    def checksums(self, start: int, block: np.ndarray) -> list[str]:
        if self._md5:
            return [f"md5:{self._md5}"]
        return ["sha256:" + hashlib.sha256(self._blob).hexdigest()]

    def compression(self) -> str:
        what = "byte-offset" if self._byte_offset else "other CBF conversion"
        md5 = ", Content-MD5" if self._md5 else ", no Content-MD5"
        outer = f", {self.path.suffix[1:]} file" if self.path.suffix in _OPENERS else ""
        return what + md5 + outer

    def header(self) -> HeaderValues:
        found = {k: rx.search(self._head) for k, rx in _PILATUS_LINES.items()}
        values = HeaderValues()
        if found["detector"]:
            values.detector = found["detector"].group(1).strip()
        if found["pixel"]:
            fast, slow = (float(v) for v in found["pixel"].groups())
            values.pixel_size_m = (slow, fast)
        if found["wavelength"]:
            values.wavelength_m = float(found["wavelength"].group(1)) * 1e-10
        if found["distance"]:
            values.distance_m = float(found["distance"].group(1))
        if found["beam"]:
            x, y = (float(v) for v in found["beam"].groups())
            values.beam_center_px = (x, y)
        if found["cutoff"]:
            values.count_cutoff = int(float(found["cutoff"].group(1)))
        return values
