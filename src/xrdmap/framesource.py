"""Read raw detector frames, read-only, and quarantine the ones that cannot be used.

CBF: the miniCBF binary section is checked against its own ``Content-MD5`` and decoded
with fabio's byte-offset decoder (the header is parsed only for what decoding needs;
anything unusual falls back to ``fabio.open``). HDF5/NeXus: ``/entry/data/data`` is read
by slices through h5py (with hdf5plugin's filters), frame by frame where a slice fails.
A frame that is missing, corrupt or of the wrong shape gets a status code and a reason;
it never stops the others.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import fabio
import fabio.ext.byte_offset as byte_offset
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 filters)
import numpy as np

from xrdmap.discovery import FrameRefs
from xrdmap.hashing import sha256_json

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
NEXUS_DATA = "/entry/data/data"
_CBF_START = b"\x0c\x1a\x04\xd5"
_HEADER_FIELD = re.compile(rb"(X-Binary-[A-Za-z-]+|Content-MD5|conversions)[:=]\s*\"?([^\"\r\n;]+)")


class FrameError(Exception):
    """A frame that cannot be used; the message says why (it is quarantined)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class FrameBatch:
    """Frames of consecutive points; bad ones are zero with a status and a reason."""

    frames: np.ndarray  #: (k, ny, nx) int32
    status: np.ndarray  #: (k,) uint8
    reason: list[str]
    checksum: list[str]  #: "md5:<base64>" (CBF, the detector's own) or "sha256:<hex>"


def read_cbf(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """One miniCBF frame as int32 and its verified Content-MD5."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FrameError(STATUS_MISSING, f"{path}: missing") from None
    except OSError as exc:
        raise FrameError(STATUS_CORRUPT, f"{path}: cannot read: {exc.strerror}") from None
    start = raw.find(_CBF_START)
    if start < 0:
        raise FrameError(STATUS_CORRUPT, f"{path}: no CBF binary section")
    fields = {k.decode(): v.decode().strip() for k, v in _HEADER_FIELD.findall(raw[:start])}
    try:
        size = int(fields["X-Binary-Size"])
        n_fast = int(fields["X-Binary-Size-Fastest-Dimension"])
        n_slow = int(fields["X-Binary-Size-Second-Dimension"])
    except (KeyError, ValueError):
        raise FrameError(STATUS_CORRUPT, f"{path}: CBF binary header incomplete") from None
    blob = raw[start + 4 : start + 4 + size]
    if len(blob) < size:
        raise FrameError(STATUS_CORRUPT, f"{path}: truncated ({len(blob)} of {size} bytes)")
    md5 = fields.get("Content-MD5")
    if md5 and base64.b64encode(hashlib.md5(blob).digest()).decode() != md5:
        raise FrameError(STATUS_CORRUPT, f"{path}: Content-MD5 mismatch (corrupt data)")
    if (n_slow, n_fast) != tuple(shape):
        raise FrameError(
            STATUS_WRONG_SHAPE, f"{path}: shape {(n_slow, n_fast)}, expected {tuple(shape)}"
        )
    if "x-CBF_BYTE_OFFSET" not in fields.get("conversions", "x-CBF_BYTE_OFFSET"):
        frame = _read_cbf_with_fabio(path)
    else:
        try:
            frame = np.asarray(byte_offset.dec_cbf32(blob, n_fast * n_slow), dtype=np.int32)
        except Exception as exc:
            raise FrameError(
                STATUS_CORRUPT, f"{path}: byte-offset decoding failed: {exc}"
            ) from None
        if frame.size != n_fast * n_slow:  # a damaged byte shifts the decoding
            raise FrameError(
                STATUS_CORRUPT,
                f"{path}: byte-offset data decode to {frame.size} pixels, "
                f"not {n_fast * n_slow} (corrupt data)",
            )
        frame = frame.reshape(shape)
    return frame, f"md5:{md5}" if md5 else "sha256:" + hashlib.sha256(blob).hexdigest()


def _read_cbf_with_fabio(path: Path) -> np.ndarray:
    try:
        data = fabio.open(str(path)).data
    except Exception as exc:
        raise FrameError(STATUS_CORRUPT, f"{path}: fabio cannot read it: {exc}") from None
    if not np.issubdtype(data.dtype, np.integer):
        raise FrameError(STATUS_WRONG_SHAPE, f"{path}: {data.dtype} data, expected integers")
    return data.astype(np.int32)


def source_identity(refs: FrameRefs) -> str:
    """The identity of the frame files of ``refs``: SHA-256 of each distinct file's name,
    size and modification time (a file replaced by another acquisition changes it)."""
    seen = []
    for rel in dict.fromkeys(refs.files):
        try:
            st = (refs.directory / rel).stat()
            seen.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            seen.append([rel, -1, -1])
    return sha256_json(seen)


def read_frames(refs: FrameRefs, start: int, stop: int, shape: tuple[int, int]) -> FrameBatch:
    """Frames of points ``start..stop-1`` (absolute point numbers inside ``refs``)."""
    k = stop - start
    batch = FrameBatch(
        frames=np.zeros((k, *shape), np.int32),
        status=np.zeros(k, np.uint8),
        reason=[""] * k,
        checksum=[""] * k,
    )
    if refs.frame_format == "cbf":
        for i in range(k):
            point = start + i
            path = refs.directory / refs.files[point - refs.start]
            try:
                if point in refs.missing:
                    raise FrameError(STATUS_MISSING, f"{path}: missing")
                batch.frames[i], batch.checksum[i] = read_cbf(path, shape)
            except FrameError as err:
                batch.status[i], batch.reason[i] = err.code, err.reason
    else:
        _read_nexus(refs, start, stop, shape, batch)
    return batch


def _read_nexus(
    refs: FrameRefs, start: int, stop: int, shape: tuple[int, int], batch: FrameBatch
) -> None:
    by_file: dict[str, list[int]] = {}
    for point in range(start, stop):
        by_file.setdefault(refs.files[point - refs.start], []).append(point)
    for rel, points in by_file.items():
        path = refs.directory / rel
        try:
            if points[0] in refs.missing:
                raise FrameError(STATUS_MISSING, f"{path}: missing")
            with h5py.File(path, "r") as h5:
                if NEXUS_DATA not in h5:
                    raise FrameError(STATUS_CORRUPT, f"{path}: {NEXUS_DATA} not found")
                dset = h5[NEXUS_DATA]
                if dset.ndim != 3 or tuple(dset.shape[1:]) != tuple(shape):
                    expected = f"(n, {shape[0]}, {shape[1]})"
                    raise FrameError(
                        STATUS_WRONG_SHAPE,
                        f"{path}: {NEXUS_DATA} shape {dset.shape}, expected {expected}",
                    )
                if not np.issubdtype(dset.dtype, np.integer):
                    raise FrameError(
                        STATUS_WRONG_SHAPE, f"{path}: {dset.dtype} data, expected integers"
                    )
                frame_idx = refs.frame_index[np.asarray(points) - refs.start]
                _read_nexus_frames(path, dset, frame_idx, points, start, batch)
        except FrameError as err:
            for point in points:
                batch.status[point - start], batch.reason[point - start] = err.code, err.reason
        except OSError as exc:  # the file itself cannot be opened
            for point in points:
                batch.status[point - start] = STATUS_CORRUPT
                batch.reason[point - start] = f"{path}: cannot open HDF5: {exc}"


def _read_nexus_frames(
    path: Path,
    dset: h5py.Dataset,
    idx: np.ndarray,
    points: list[int],
    start: int,
    batch: FrameBatch,
) -> None:
    contiguous = bool(np.all(np.diff(idx) == 1))
    if contiguous and idx[-1] < dset.shape[0]:
        try:
            block = dset[idx[0] : idx[-1] + 1]
            for j, point in enumerate(points):
                _accept(batch, point - start, block[j].astype(np.int32, copy=False))
            return
        except OSError:
            pass  # a damaged chunk somewhere: isolate it frame by frame
    for point, frame_idx in zip(points, idx, strict=True):
        i = point - start
        if frame_idx >= dset.shape[0]:
            batch.status[i] = STATUS_MISSING
            batch.reason[i] = f"{path}: frame {frame_idx} beyond {dset.shape[0]} frames"
            continue
        try:
            _accept(batch, i, dset[frame_idx].astype(np.int32, copy=False))
        except OSError as exc:
            batch.status[i] = STATUS_CORRUPT
            batch.reason[i] = f"{path}: frame {frame_idx} unreadable: {exc}"


def _accept(batch: FrameBatch, i: int, frame: np.ndarray) -> None:
    batch.frames[i] = frame
    batch.checksum[i] = "sha256:" + hashlib.sha256(frame.tobytes()).hexdigest()
