"""Frame sources on files written here: multi-frame files, compressed copies, float
pixels, the family chosen by the file name."""

import gzip
import os

import fabio
import numpy as np
import pytest

import xrdmap.sources.reading as reading
from xrdmap.sources import (
    STATUS_OK,
    STATUS_WRONG_SHAPE,
    FrameRefs,
    open_source,
    read_frames,
    source_class,
)
from xrdmap.sources.cbf import CbfFile
from xrdmap.sources.fabio_file import FabioFile
from xrdmap.sources.hdf5 import Hdf5Dataset


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("a.cbf", CbfFile),
        ("a.CBF.gz", CbfFile),
        ("scan.nxs", Hdf5Dataset),
        ("x_master.h5", Hdf5Dataset),
        ("a.edf", FabioFile),
        ("a.mar3450", FabioFile),
        ("a.tif", FabioFile),
    ],
)
def test_the_family_is_chosen_by_the_file_name(tmp_path, name, cls):
    assert source_class(tmp_path / name) is cls


def test_a_multi_frame_edf_and_its_gzip_copy(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60000, (3, 20, 30)).astype(np.uint16)
    image = fabio.edfimage.EdfImage(data=frames[0])
    for frame in frames[1:]:
        image.append_frame(data=frame)
    image.write(str(tmp_path / "m.edf"))
    (tmp_path / "m.edf.gz").write_bytes(gzip.compress((tmp_path / "m.edf").read_bytes()))
    for name in ("m.edf", "m.edf.gz"):
        with open_source(tmp_path / name) as src:
            assert (src.n_frames, src.shape, src.dtype) == (3, (20, 30), np.uint16)
        refs = FrameRefs(tmp_path, 0, (name,) * 3, np.array([2, 0, 1]), frozenset())
        batch = read_frames(refs, 0, 3, (20, 30))
        assert (batch.status == STATUS_OK).all()
        np.testing.assert_array_equal(batch.frames, frames[[2, 0, 1]].astype(np.int32))


def test_float_pixels_are_refused_naming_the_file(tmp_path):
    fabio.edfimage.EdfImage(data=np.ones((20, 30), np.float32)).write(str(tmp_path / "f.edf"))
    refs = FrameRefs(tmp_path, 0, ("f.edf",), np.array([0]), frozenset())
    batch = read_frames(refs, 0, 1, (20, 30))
    assert batch.status[0] == STATUS_WRONG_SHAPE
    assert batch.reason[0] == f"{tmp_path / 'f.edf'}: float32 pixels, expected integer counts"


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
def test_prefetch_advises_each_frame_file_of_the_range_once(tmp_path, monkeypatch):
    """Readahead advice for the files of the points asked for, each file once; not an
    HDF5 dataset (h5py reads its chunks), not a missing file, not one above the limit."""
    for name, size in (("a.cbf", 100), ("b.cbf", 100), ("c.cbf", 100), ("big.edf", 1000)):
        (tmp_path / name).write_bytes(b"x" * size)
    (tmp_path / "scan.h5").write_bytes(b"x" * 100)
    files = ("a.cbf", "b.cbf", "b.cbf", "scan.h5::/entry/data", "gone.cbf", "big.edf", "c.cbf")
    refs = FrameRefs(tmp_path, 10, files, np.arange(7), frozenset({14}))
    advised = []
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, *args: advised.append((os.fstat(fd).st_ino, args))
    )
    monkeypatch.setattr(reading, "PREFETCH_MAX_BYTES", 500)

    def inode(*names):
        return [(tmp_path / n).stat().st_ino for n in names]

    reading.prefetch(refs, 11, 16)  # points 11..15: b, b, scan.h5, gone, big
    assert advised == [(*inode("b.cbf"), (0, 0, os.POSIX_FADV_WILLNEED))]
    advised.clear()
    reading.prefetch(refs, 0, 100)  # beyond the refs: clipped to them
    assert [ino for ino, _ in advised] == inode("a.cbf", "b.cbf", "c.cbf")


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
def test_read_ahead_advises_the_next_run_before_yielding_this_one(tmp_path, monkeypatch):
    names = tuple(f"{i}.cbf" for i in range(6))
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    refs = FrameRefs(tmp_path, 0, names, np.zeros(6, int), frozenset())
    events = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, *args: events.append(os.fstat(fd).st_ino))
    ino = {(tmp_path / n).stat().st_ino: int(n[0]) for n in names}
    for run in reading.read_ahead(refs, [(0, 2), (2, 4), (4, 6)]):
        events.append(run)
    assert [ino.get(e, e) if isinstance(e, int) else e for e in events] == [
        0, 1, 2, 3, (0, 2), 4, 5, (2, 4), (4, 6),
    ]  # fmt: skip
