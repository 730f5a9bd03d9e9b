"""Frames of consecutive scan points, read-only, with the bad ones quarantined.

Points are grouped by the file that holds them; each file is opened once through its
:class:`~xrdmap.sources.base.FrameSource` and consecutive frames are read as one block
(a damaged block is retried frame by frame to isolate the bad ones). A frame that is
missing, corrupt or of the wrong shape or type gets a status code and a reason naming
the file; it never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xrdmap.hashing import sha256_json
from xrdmap.sources.base import (
    STATUS_MISSING,
    STATUS_WRONG_SHAPE,
    FrameError,
    FrameSource,
    split_spec,
)
from xrdmap.sources.registry import open_source

_INT32_MAX = np.iinfo(np.int32).max
#: Files up to this size are read ahead whole (one or a few frames each); a larger one
#: (a multi-frame container) is left to the kernel's own readahead.
PREFETCH_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class FrameRefs:
    """Where the frames of consecutive points ``start..start+len(files)-1`` are: a file
    (``name`` or ``name.h5::/dataset``, relative to ``directory``) and a frame index in it
    per point. Small enough to ship to a task."""

    directory: Path
    start: int
    files: tuple[str, ...]
    frame_index: np.ndarray
    missing: frozenset[int]

    @property
    def stop(self) -> int:
        return self.start + len(self.files)


@dataclass
class FrameBatch:
    """Frames of consecutive points; bad ones are zero with a status and a reason."""

    frames: np.ndarray  #: (k, ny, nx) int32
    status: np.ndarray  #: (k,) uint8
    reason: list[str]
    checksum: list[str]  #: "md5:<base64>" (CBF, the detector's own) or "sha256:<hex>"


def source_identity(refs: FrameRefs, keep: np.ndarray | None = None) -> str:
    """The identity of the frame files of ``refs`` (of its points where ``keep`` is
    true): SHA-256 of each distinct file's name, size and modification time (a file
    replaced by another acquisition changes it)."""
    files = refs.files if keep is None else [f for f, k in zip(refs.files, keep, strict=True) if k]
    seen = []
    for spec in dict.fromkeys(files):
        name, _ = split_spec(spec)
        try:
            st = (refs.directory / name).stat()
            seen.append([spec, st.st_size, st.st_mtime_ns])
        except OSError:
            seen.append([spec, -1, -1])
    return sha256_json(seen)


def prefetch(refs: FrameRefs, start: int, stop: int) -> None:
    """Ask the kernel to start reading the files of points ``start..stop-1`` now
    (``posix_fadvise`` WILLNEED), so that they come from the disk while this process
    works on the frames before them. HDF5 datasets, files above
    :data:`PREFETCH_MAX_BYTES` and files that cannot be opened are skipped: reading
    them later reports what is wrong; nothing here does. A no-op where the system has
    no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return
    lo, hi = max(start, refs.start) - refs.start, min(stop, refs.stop) - refs.start
    for spec in dict.fromkeys(refs.files[lo:hi]):
        name, dataset = split_spec(spec)
        if dataset is not None:
            continue
        try:
            fd = os.open(refs.directory / name, os.O_RDONLY)
        except OSError:
            continue
        try:
            if os.fstat(fd).st_size <= PREFETCH_MAX_BYTES:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # a file system without readahead advice
        finally:
            os.close(fd)


def read_ahead(refs: FrameRefs, runs: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """``runs`` (first, stop) of ``refs``' points, each yielded once the files of the
    run after it were :func:`prefetch`-ed: the next block comes off the disk while
    the caller works on this one."""
    for n, run in enumerate(runs):
        if n == 0:
            prefetch(refs, *run)
        if n + 1 < len(runs):
            prefetch(refs, *runs[n + 1])
        yield run


def as_counts(block: np.ndarray, source: FrameSource) -> np.ndarray:
    """Integer counts as int32 (unsigned values above its range become its maximum,
    which the count cutoff then drops); anything else is refused."""
    if not np.issubdtype(block.dtype, np.integer):
        raise FrameError(
            STATUS_WRONG_SHAPE, f"{source.path}: {block.dtype} pixels, expected integer counts"
        )
    if block.dtype.itemsize >= 4 and not np.issubdtype(block.dtype, np.signedinteger):
        block = np.minimum(block, _INT32_MAX)
    return block.astype(np.int32, copy=False)


def read_frames(refs: FrameRefs, start: int, stop: int, shape: tuple[int, int]) -> FrameBatch:
    """Frames of points ``start..stop-1`` (absolute point numbers inside ``refs``)."""
    k = stop - start
    batch = FrameBatch(
        frames=np.zeros((k, *shape), np.int32),
        status=np.zeros(k, np.uint8),
        reason=[""] * k,
        checksum=[""] * k,
    )
    runs: list[tuple[str, list[int]]] = []  # consecutive points of one file
    for point in range(start, stop):
        spec = refs.files[point - refs.start]
        if runs and runs[-1][0] == spec:
            runs[-1][1].append(point)
        else:
            runs.append((spec, [point]))
    for spec, points in runs:
        try:
            if points[0] in refs.missing:
                raise FrameError(STATUS_MISSING, f"{refs.directory / split_spec(spec)[0]}: missing")
            with open_source(spec, refs.directory) as source:
                if source.shape != tuple(shape):
                    raise FrameError(
                        STATUS_WRONG_SHAPE,
                        f"{source.path}: frame shape {source.shape}, expected {tuple(shape)}",
                    )
                _read_run(source, refs, points, start, batch)
        except FrameError as err:
            for point in points:
                batch.status[point - start], batch.reason[point - start] = err.code, err.reason
    return batch


def _read_run(
    source: FrameSource, refs: FrameRefs, points: list[int], start: int, batch: FrameBatch
) -> None:
    """Points of one file: their frames read in contiguous blocks."""
    index = refs.frame_index[np.asarray(points) - refs.start]
    absent = source.missing_frames()
    todo = []
    for point, frame in zip(points, index, strict=True):
        if int(frame) in absent:
            batch.status[point - start] = STATUS_MISSING
            batch.reason[point - start] = absent[int(frame)]
        else:
            todo.append((point, int(frame)))
    blocks: list[list[tuple[int, int]]] = []
    for item in todo:
        if blocks and item[1] == blocks[-1][-1][1] + 1:
            blocks[-1].append(item)
        else:
            blocks.append([item])
    for block in blocks:
        try:
            _accept(source, block, start, batch)
        except FrameError:
            if len(block) == 1:
                raise
            for item in block:  # isolate the damaged frames
                try:
                    _accept(source, [item], start, batch)
                except FrameError as err:
                    batch.status[item[0] - start], batch.reason[item[0] - start] = (
                        err.code,
                        err.reason,
                    )


def _accept(source: FrameSource, block: list[tuple[int, int]], start: int, batch: FrameBatch):
    first = block[0][1]
    data = source.read(first, first + len(block))
    sums = source.checksums(first, data)
    counts = as_counts(data, source)
    i = block[0][0] - start
    batch.frames[i : i + len(block)] = counts
    batch.checksum[i : i + len(block)] = sums
