"""Frame sources on real files from other beamlines (../shared/realdata, see its
SOURCES.md); skipped, with that reason, where the folder is absent."""

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from xrdmap.sources import (
    STATUS_MISSING,
    STATUS_OK,
    FrameError,
    FrameRefs,
    open_source,
    read_frames,
)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "area_detector"
pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real data folder {REAL} absent (see the guide: Real data)"
)


def _refs(directory: Path, files: list[str], frames: list[int]) -> FrameRefs:
    return FrameRefs(directory, 0, tuple(files), np.asarray(frames), frozenset())


@pytest.mark.parametrize(
    ("name", "family", "shape", "dtype"),
    [
        ("mar345_steel_ceo2/nx09_strain_001.mar2300", "fabio", (2300, 2300), np.uint32),
        ("spe_ceo2/CeO2_PI_CCD_Mo.SPE", "fabio", (1042, 1042), np.uint16),
        ("tiff_saxs_agbh/AgBehenate_003.tif", "fabio", (1024, 1024), np.uint16),
        ("cbf_pilatus/thau_3_2_0001.cbf.bz2", "cbf", (2527, 2463), np.int32),
        ("cbf_pilatus/DLS_I03_smargon_0001.cbf.gz", "cbf", (2527, 2463), np.int32),
    ],
)
def test_fabio_formats_and_compressed_cbf_open(name, family, shape, dtype):
    with open_source(REAL / name) as src:
        assert (src.family, src.n_frames, src.shape, src.dtype) == (family, 1, shape, dtype)
        frame = src.read(0, 1)
    assert frame.shape == (1, *shape) and frame.max() > 0


def test_pilatus_cbf_md5_is_verified_and_header_read():
    path = REAL / "cbf_pilatus/thau_3_2_0001.cbf.bz2"
    with open_source(path) as src:
        block = src.read(0, 1)
        (checksum,) = src.checksums(0, block)
        header = src.header()
    assert checksum.startswith("md5:") and "Content-MD5" in src.compression()
    assert header.pixel_size_m == (172e-6, 172e-6)
    assert header.wavelength_m == pytest.approx(0.96859e-10)
    assert header.distance_m == pytest.approx(0.351)
    assert header.beam_center_px == (1261.61, 1306.96) and header.count_cutoff == 115897
    assert header.detector.startswith("PILATUS3 6M")


def test_a_cbf_without_md5_is_accepted_and_identified_by_sha256():
    path = REAL / "cbf_pilatus/dlsnxs2cbf_therm_0001.cbf.gz"
    with open_source(path) as src:
        block = src.read(0, 1)
        (checksum,) = src.checksums(0, block)
    assert checksum.startswith("sha256:") and "no Content-MD5" in src.compression()
    assert block.shape == (1, 4362, 4148)


def test_a_pilatus_cbf_with_a_flipped_byte_is_quarantined(tmp_path):
    import bz2

    raw = bytearray(bz2.decompress((REAL / "cbf_pilatus/thau_3_2_0001.cbf.bz2").read_bytes()))
    raw[-5000] ^= 0x01
    (tmp_path / "bad.cbf").write_bytes(bytes(raw))
    batch = read_frames(_refs(tmp_path, ["bad.cbf"], [0]), 0, 1, (2527, 2463))
    assert batch.status[0] != STATUS_OK
    assert "bad.cbf: Content-MD5 mismatch" in batch.reason[0]


@pytest.mark.parametrize(
    ("name", "shape", "codec"),
    [
        (
            "dectris_eiger1_testmode10_2datafiles_4images_bslz4_data_000001.h5",
            (1065, 1030),
            "bitshuffle-LZ4",
        ),
        (
            "dectris_eiger2_simread7_2datafiles_4images_bslz4_data_000001.h5",
            (512, 1028),
            "bitshuffle-LZ4",
        ),
        ("dectris_eiger2_simread7_2datafiles_4images_lz4_data_000001.h5", (512, 1028), "LZ4"),
    ],
)
def test_dectris_data_files_decode_in_one_block(name, shape, codec):
    refs = _refs(REAL / "eiger_nxmx", [name, name], [0, 1])
    batch = read_frames(refs, 0, 2, shape)
    assert (batch.status == STATUS_OK).all()
    with open_source(REAL / "eiger_nxmx" / name) as src:
        assert src.n_frames == 2 and codec in src.compression()
        raw = src.read(0, 2)
    assert (batch.frames == raw.astype(np.int32)).all() and raw.max() > 0
    with h5py.File(REAL / "eiger_nxmx" / name, "r") as f:
        stored = f["entry/data/data"].id.read_direct_chunk((1, 0, 0))[1]  # the file's bytes
    assert batch.checksum[1] == "sha256-chunk:" + hashlib.sha256(stored).hexdigest()


def test_eiger_master_metadata_and_its_missing_data_file_named():
    master = REAL / "eiger_nxmx/dials_dectris_eiger9M_master.h5"
    with pytest.raises(FrameError, match=r"external link to .*dectris_eiger_data_000001.h5: miss"):
        open_source(f"{master}::/entry/data/data_000001")
    with open_source(f"{master}::/entry/instrument/detector/detectorSpecific/pixel_mask") as src:
        header = src.header()  # a 2D dataset of the master: the header is the master's
    assert header.pixel_size_m == pytest.approx((75e-6, 75e-6))
    assert header.wavelength_m == pytest.approx(0.98011e-10, rel=1e-4)
    assert header.distance_m == pytest.approx(0.134255)
    assert header.beam_center_px == pytest.approx((1607.4, 1586.4), abs=0.1)
    refs = _refs(master.parent, [f"{master.name}::/entry/data/data_000001"], [0])
    batch = read_frames(refs, 0, 1, (3269, 3110))
    assert batch.status[0] == STATUS_MISSING
    assert "dectris_eiger_data_000001.h5: missing" in batch.reason[0]


def test_a_virtual_dataset_over_a_missing_file_quarantines_its_frames_by_name():
    """Diamond NXmx master: /entry/data/data is a VDS over an absent data file. HDF5
    would return fill values; each frame is quarantined, the file named."""
    nxs = REAL / "eiger_nxmx/DLS_I04_Therm_6_2.nxs"
    with open_source(nxs) as src:
        assert src.n_frames == 488 and src.shape == (4362, 4148)
        assert "virtual dataset" in src.compression()
        assert src.header().wavelength_m == pytest.approx(0.98027e-10)
    batch = read_frames(_refs(nxs.parent, [nxs.name] * 3, [0, 1, 2]), 0, 3, (4362, 4148))
    assert (batch.status == STATUS_MISSING).all()
    assert "Therm_6_2_000001.h5 missing" in batch.reason[2]


def test_bliss_scan_lima_frames_over_missing_files():
    scan = REAL / "bliss_h5_structure/demoh5_dataset/demoh5_dataset.h5"
    spec = f"{scan.name}::/2.1/instrument/marana/data"
    with open_source(spec, scan.parent) as src:
        assert (src.n_frames, src.shape) == (5, (2048, 2048))
    batch = read_frames(_refs(scan.parent, [spec] * 5, range(5)), 0, 5, (2048, 2048))
    assert (batch.status == STATUS_MISSING).all() and "marana_0000.h5 missing" in batch.reason[0]


def test_bliss_positioners_are_read_and_clocks_are_no_motors():
    """ESRF ID11 loopscan: 52 entries in instrument/positioners, 50 motors that did not
    move (a snapshot) and two clocks (epoch, elapsed_time) that are no positions."""
    from xrdmap.survey import survey

    found = survey(REAL / "bliss_h5_structure/demoh5_dataset")
    scan = next(f for f in found.framesets if f.name == "demoh5_dataset_2.1")
    assert scan.n_frames == 5 and scan.shape == (2048, 2048)
    assert len(scan.snapshot) == 50 and {"samx", "samy", "diffrz"} <= set(scan.snapshot)
    assert scan.motors == {}  # a loopscan moves nothing: init asks for positions
    assert scan.missing == [str(REAL / "bliss_h5_structure/demoh5_dataset/scan0002/marana_0000.h5")]


def test_a_bliss_proposal_file_named_alone_leads_to_its_scans():
    """ESRF BLISS: the proposal file holds only external links to the dataset file's
    scans; described alone it had given "0 frame sets". Its scans are found through the
    links, as the folder's survey finds them."""
    from xrdmap.survey import summary_lines, survey

    found = survey(REAL / "bliss_h5_structure/ma4500_demoh5.h5")
    spec = "demoh5_dataset/demoh5_dataset.h5::/{}/instrument/marana/data"
    assert [(f.name, f.frames, f.n_frames) for f in found.framesets] == [
        ("demoh5_dataset_1.1", spec.format("1.1"), 2),
        ("demoh5_dataset_2.1", spec.format("2.1"), 5),
    ]
    assert found.followed == ["demoh5_dataset/demoh5_dataset.h5"]
    assert "  (through external links, in demoh5_dataset/demoh5_dataset.h5)" in summary_lines(found)
    folder = survey(REAL / "bliss_h5_structure")
    assert [f.frames for f in folder.framesets] == [f.frames for f in found.framesets]
    assert folder.followed == []
