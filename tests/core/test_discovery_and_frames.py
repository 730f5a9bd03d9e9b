"""Finding a beamtime's frames, and quarantining the ones that cannot be used."""

import hashlib
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from xrdmap.discovery import SCAN_COMPLETE, BeamtimeError, discover_beamtime
from xrdmap.sources import (
    STATUS_CORRUPT,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_WRONG_SHAPE,
    read_frames,
)

SHAPE = (195, 487)


@pytest.fixture
def beamtime_copy(tiny_beamtime, tmp_path):
    dst = tmp_path / "beamtime"
    shutil.copytree(tiny_beamtime.beamtime_dir, dst)
    return dst


def test_discovers_samples_and_frames(tiny_beamtime):
    bt = discover_beamtime(tiny_beamtime.beamtime_dir)
    assert [s.name for s in bt.samples] == ["A_urban", "B_marine"]
    a = bt.sample("A_urban")
    assert a.grid == (80, 4) and a.n_points == 320 and a.frame_format == "cbf"
    assert a.positions_um.shape == (320, 2) and not a.missing
    assert bt.poni_path.name == "geometry.poni" and bt.count_cutoff == 1048575


def test_missing_frame_is_listed_not_fatal(beamtime_copy):
    victim = next((beamtime_copy / "A_urban" / "frames").glob("*_000005.cbf"))
    victim.unlink()
    a = discover_beamtime(beamtime_copy).sample("A_urban")
    assert a.missing == (4,)
    batch = read_frames(a.frame_refs(0, 8), 0, 8, SHAPE)
    assert batch.status[4] == STATUS_MISSING and "missing" in batch.reason[4]
    assert (batch.status[[0, 1, 2, 3, 5, 6, 7]] == STATUS_OK).all()


def test_path_outside_the_beamtime_is_refused(beamtime_copy):
    points = pd.read_csv(beamtime_copy / "A_urban" / "points.csv")
    points.loc[3, "file"] = "../../../etc/passwd"
    points.to_csv(beamtime_copy / "A_urban" / "points.csv", index=False)
    with pytest.raises(BeamtimeError, match=r"points.csv: line 5: file: .* outside the beamtime"):
        discover_beamtime(beamtime_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.drop(columns="x_um"), r"points.csv: column\(s\) x_um missing"),
        (lambda p: p.iloc[:-1], r"points.csv: 319 points, scan.json grid says 320"),
        (
            lambda p: p.assign(y_um=["a"] * len(p)),
            r"points.csv: line 2: y_um: 'a' is not a finite number",
        ),
    ],
)
def test_bad_points_table(beamtime_copy, edit, message):
    path = beamtime_copy / "A_urban" / "points.csv"
    edit(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(BeamtimeError, match=message):
        discover_beamtime(beamtime_copy)


def test_incomplete_scan_and_bad_scan_json(beamtime_copy):
    scan = beamtime_copy / "B_marine" / "scan.json"
    scan.write_text(json.dumps({**json.loads(scan.read_text()), "grid": {"rows": "x"}}))
    with pytest.raises(BeamtimeError, match=r"B_marine/scan.json: grid: needs integer"):
        discover_beamtime(beamtime_copy)
    (beamtime_copy / "B_marine" / SCAN_COMPLETE).unlink()
    with pytest.raises(BeamtimeError, match=r"B_marine: scan not complete"):
        discover_beamtime(beamtime_copy)


def test_corrupt_truncated_and_wrong_shape_cbf(beamtime_copy):
    frames = sorted((beamtime_copy / "A_urban" / "frames").glob("*.cbf"))
    raw = bytearray(frames[1].read_bytes())
    raw[-500] ^= 0xFF  # one flipped byte in the compressed data
    frames[1].write_bytes(bytes(raw))
    frames[2].write_bytes(frames[2].read_bytes()[:30000])  # truncated
    frames[3].write_bytes(b"not a CBF at all")
    import fabio

    fabio.cbfimage.CbfImage(data=np.zeros((100, 100), np.int32)).write(str(frames[4]))
    a = discover_beamtime(beamtime_copy).sample("A_urban")
    batch = read_frames(a.frame_refs(0, 6), 0, 6, SHAPE)
    assert list(batch.status) == [
        0,
        STATUS_CORRUPT,
        STATUS_CORRUPT,
        STATUS_CORRUPT,
        STATUS_WRONG_SHAPE,
        0,
    ]
    assert "Content-MD5 mismatch" in batch.reason[1]
    assert "truncated" in batch.reason[2]
    assert str(frames[3]) in batch.reason[3]
    assert "(100, 100)" in batch.reason[4]
    assert (batch.frames[1:5] == 0).all() and batch.frames[5].any()
    assert batch.checksum[0].startswith("md5:") and batch.checksum[1] == ""


@pytest.fixture
def nexus_beamtime(tmp_path_factory, tiny_sim_config):
    from xrdmap.config import PresetConfig, SampleSpec
    from xrdmap.simulate.beamtime import simulate_beamtime

    preset = PresetConfig(samples=[SampleSpec(name="H", condition="C01", grid=(65, 2))])
    cfg = tiny_sim_config.model_copy(update={"presets": {"h": preset}})
    out = tmp_path_factory.mktemp("nexus") / "bt"
    return simulate_beamtime(out, preset="h", seed=2, layout="hdf5", progress=False, sim=cfg)


def test_nexus_frames_read_back(nexus_beamtime):
    sample = discover_beamtime(nexus_beamtime.beamtime_dir).sample("H")
    batch = read_frames(sample.frame_refs(0, 130), 0, 130, SHAPE)
    assert (batch.status == STATUS_OK).all()
    with h5py.File(sample.directory / "H.h5", "r") as f:
        np.testing.assert_array_equal(batch.frames, f["/entry/data/data"][:])
        stored = f["/entry/data/data"].id.read_direct_chunk((0, 0, 0))[1]
    assert batch.checksum[0] == "sha256-chunk:" + hashlib.sha256(stored).hexdigest()


def test_truncated_nexus_quarantines_only_the_lost_frames(nexus_beamtime, tmp_path):
    dst = tmp_path / "bt"
    shutil.copytree(nexus_beamtime.beamtime_dir, dst)
    h5 = dst / "H" / "H.h5"
    h5.write_bytes(h5.read_bytes()[: int(h5.stat().st_size * 0.6)])
    sample = discover_beamtime(dst).sample("H")
    batch = read_frames(sample.frame_refs(0, 130), 0, 130, SHAPE)
    assert (batch.status == STATUS_CORRUPT).any()
    assert all("H.h5" in r for r, s in zip(batch.reason, batch.status, strict=True) if s)


def test_nexus_of_the_wrong_shape(nexus_beamtime, tmp_path):
    dst = tmp_path / "bt"
    shutil.copytree(nexus_beamtime.beamtime_dir, dst)
    with h5py.File(dst / "H" / "H.h5", "r+") as f:
        del f["/entry/data/data"]
        f["/entry/data/data"] = np.zeros((130, 10, 10), np.int32)
    sample = discover_beamtime(dst).sample("H")
    batch = read_frames(sample.frame_refs(0, 130), 0, 130, SHAPE)
    assert (batch.status == STATUS_WRONG_SHAPE).all()
    assert "frame shape (10, 10), expected (195, 487)" in batch.reason[0]


def test_symlink_leaving_the_beamtime_is_refused(beamtime_copy, tmp_path):
    outside = tmp_path / "elsewhere.cbf"
    outside.write_bytes(b"x")
    frame = beamtime_copy / "A_urban" / "frames" / "A_urban_000002.cbf"
    frame.unlink()
    frame.symlink_to(outside)
    with pytest.raises(BeamtimeError, match=r"points.csv: line 3: file: .* outside the beamtime"):
        discover_beamtime(beamtime_copy)


def test_threads_reading_one_hdf5_file_do_not_break_each_other(tmp_path):
    """Ingest on threads: three threads open, read, checksum and close one file of
    one-frame chunks again and again. Without one-handle-at-a-time, a handle closed in
    one thread failed the others' chunk reads and crashed the process (hence the
    subprocess)."""
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "entry/data/data",
            data=np.arange(40 * 6 * 5, dtype=np.int32).reshape(40, 6, 5),
            chunks=(1, 6, 5),
            compression="gzip",
        )
    code = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from xrdmap.sources.hdf5 import Hdf5Dataset\n"
        "bad = []\n"
        "def work(k):\n"
        "    for _ in range(200):\n"
        "        with Hdf5Dataset(Path(sys.argv[1]), 'entry/data/data') as src:\n"
        "            sums = src.checksums(k, src.read(k, k + 4))\n"
        "            bad.extend(s for s in sums if not s.startswith('sha256-chunk:'))\n"
        "threads = [threading.Thread(target=work, args=(k,)) for k in (0, 10, 20)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(len(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "0"  # every checksum from the file's own chunk
