"""`xrdmap describe` and `xrdmap init` as a newcomer meets them: what they find, the
one-line refusals, and a manifest that `process` can read."""

import shutil

import pytest
import yaml

from xrdmap.discovery import discover_beamtime


@pytest.fixture
def raw(tiny_beamtime, tmp_path):
    """The tiny beamtime's frames, as a beamline left them (the folder layout's own
    description files removed)."""
    dst = tmp_path / "raw"
    shutil.copytree(tiny_beamtime.beamtime_dir, dst)
    (dst / "beamtime.json").unlink()
    for sample in ("A_urban", "B_marine"):
        (dst / sample / "scan.json").unlink()
    return dst


def test_describe_finds_the_frame_series_and_skips_the_mask(raw, xrdmap):
    out = xrdmap("describe", raw)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "A_urban: 320 frames in 320 files: A_urban/frames/A_urban_*.cbf" in text
    assert "B_marine: 411 frames in 411 files" in text
    assert "format cbf, 195 x 487 int32, byte-offset, Content-MD5" in text
    assert "header: PILATUS3 100K, S/N 3-0110; pixel 172 x 172 um; wavelength 1.2398 A" in text
    assert "count cutoff 1048575" in text
    assert "skipped: " in text and "mask.edf: an 8-bit image (a mask?)" in text


def test_one_file_is_described_alone_and_another_file_refused(raw):
    """One frame named on the command line is a set of one frame (it had been counted
    with its whole series, "320 frames in 1 file"); a file that is no frame is refused
    with its name (it had given "0 frame sets" of its folder)."""
    from xrdmap.errors import BeamtimeError
    from xrdmap.survey import summary_lines, survey

    frame = raw / "A_urban" / "frames" / "A_urban_000001.cbf"
    (found,) = survey(frame).framesets
    assert (found.n_frames, found.n_files, found.frames) == (1, 1, "A_urban_000001.cbf")
    assert "A_urban: 1 frame in 1 file: A_urban_000001.cbf" in summary_lines(survey(frame))
    with pytest.raises(BeamtimeError, match=r"geometry.poni: not a frame or HDF5 file"):
        survey(raw / "geometry.poni")


def test_a_file_of_links_alone_is_followed_to_the_frames(tmp_path):
    """A BLISS proposal file links to sample files, which link to dataset files with
    the scans: named alone, it is followed down to the frames; a link to a missing file
    or to one outside its folder is said, not followed."""
    import h5py
    import numpy as np

    from xrdmap.survey import survey

    top = tmp_path / "proposal"
    (top / "s1" / "ds").mkdir(parents=True)
    with h5py.File(top / "s1" / "ds" / "ds.h5", "w") as h5:
        h5["1.1/instrument/det/data"] = np.zeros((3, 16, 20), np.uint16)
    with h5py.File(top / "s1" / "s1.h5", "w") as h5:
        h5["ds_1.1"] = h5py.ExternalLink("ds/ds.h5", "/1.1")
    with h5py.File(tmp_path / "elsewhere.h5", "w") as h5:
        h5["x"] = np.zeros((2, 16, 16), np.uint16)
    with h5py.File(top / "p.h5", "w") as h5:
        h5["s1_ds_1.1"] = h5py.ExternalLink("s1/s1.h5", "/ds_1.1")
        h5["gone"] = h5py.ExternalLink("s2/s2.h5", "/x")
        h5["out"] = h5py.ExternalLink("../elsewhere.h5", "/x")

    found = survey(top / "p.h5")
    assert [(f.frames, f.n_frames, f.shape) for f in found.framesets] == [
        ("s1/ds/ds.h5::/1.1/instrument/det/data", 3, (16, 20))
    ]
    assert found.followed == ["s1/ds/ds.h5"]
    assert sorted(found.unreadable) == [
        f"{tmp_path / 'elsewhere.h5'}: linked from p.h5, outside its folder; describe it itself",
        f"{top / 's2' / 's2.h5'}: linked from p.h5, missing",
    ]


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_init_refusals_are_one_line(raw, tmp_path, xrdmap):
    poni = ["--poni", raw / "geometry.poni"]
    for args, message in (
        ([], "no geometry: give --poni FILE"),
        (poni, "A_urban: positions: 0 motors move with the frames"),
        ([*poni, "--steps", "80x4"], "--steps needs --step-um"),
        ([*poni, "--steps", "8x4", "--step-um", "2"], "--steps 8x4 is 32 points, the frames"),
        ([*poni, "--sample", "C"], "--sample C: not found; there are A_urban, B_marine"),
        (
            [
                *poni,
                "--steps",
                "80x4",
                "--step-um",
                "2",
                "--sample",
                "A_urban",
                "--out",
                raw / "i.yaml",
            ],
            "inside the raw",
        ),
    ):
        out_args = [] if "--out" in args else ["--out", tmp_path / "m.yaml"]
        out = xrdmap("init", raw, *args, *out_args)
        assert out.returncode == 2, (args, out.stdout)
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "m.yaml").exists() and not (raw / "i.yaml").exists()
    bad = xrdmap("init", raw, *poni, "--steps", "80by4")
    assert bad.returncode == 2 and "'80by4': expected N or NxM" in bad.stderr


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_init_writes_a_manifest_process_reads(raw, tmp_path, xrdmap):
    args = ["init", raw, "--poni", raw / "geometry.poni", "--mask", raw / "mask.edf"]
    args += ["--positions-csv", "{folder}/../points.csv", "--x", "x_um", "--y", "y_um"]
    out = xrdmap(*args, "--out", tmp_path / "bt.yaml")
    assert out.returncode == 0, out.stderr
    assert f"Next: xrdmap process {tmp_path / 'bt.yaml'} --store bt.zarr" in out.stdout
    manifest = yaml.safe_load((tmp_path / "bt.yaml").read_text())
    assert manifest["raw"] == "raw" and manifest["geometry"]["mask"] == "raw/mask.edf"
    assert manifest["samples"][1]["positions"]["file"] == "B_marine/points.csv"
    described = xrdmap("describe", tmp_path / "bt.yaml")
    assert described.returncode == 0, described.stderr
    assert "A_urban: 320 points on 80 x 4, 320 cbf files" in described.stdout
    assert "count cutoff: 1048575" in described.stdout
    bt = discover_beamtime(tmp_path / "bt.yaml")
    assert [s.grid for s in bt.samples] == [(80, 4), (137, 3)]
    again = xrdmap(*args, "--out", tmp_path / "bt.yaml")
    assert again.returncode == 2 and "exists; --force replaces it" in again.stderr
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "bt.yaml", moved / "bt.yaml")
    shutil.move(raw, moved / "raw")  # relative paths: the two move together
    assert discover_beamtime(moved / "bt.yaml").sample("A_urban").n_points == 320


def test_geometry_from_the_header_is_written_with_a_warning(raw, tmp_path, xrdmap):
    out = xrdmap(
        "init", raw, "--geometry-from-header", "--steps", "80x4", "--step-um", "2",
        "--sample", "A_urban", "--out", tmp_path / "h.yaml",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "warning: geometry from the frame header of A_urban" in out.stdout
    assert "not a calibration" in out.stdout
    poni = (tmp_path / "h.header.poni").read_text()
    assert "Distance: 0.153" in poni and "Wavelength: 1.2398" in poni
