"""Real frames from other beamlines (../shared/realdata, see its SOURCES.md) through
`describe`, `init` and `process` as the README shows; skipped, with that reason, where
the folder is absent."""

import shutil
from pathlib import Path

import fabio
import numpy as np
import pyFAI
import pytest
import yaml
from scipy.signal import find_peaks

from xrdmap.store import open_store, sample_group

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "area_detector"
pytestmark = [
    pytest.mark.skipif(
        not REAL.is_dir(), reason=f"real data folder {REAL} absent (see the guide: Real data)"
    ),
    pytest.mark.slow,  # processes real frames: over 5 s per test, not in make test-fast
]
STEEL = REAL / "mar345_steel_ceo2"
PONI = STEEL / "nx09_strain_from_GSASII_imctrl.poni"
#: SOURCES.md A1: the strongest steel lines observed (angstrom).
STEEL_LINES = {
    "austenite 111": 2.0789,
    "ferrite 110": 2.0331,
    "austenite 200": 1.8003,
    "ferrite 200": 1.4365,
    "austenite 220": 1.273,
    "ferrite 211": 1.173,
}


@pytest.fixture(scope="module")
def steel(prefect_server, xrdmap, tmp_path_factory):
    """The three MAR345 frames described, their manifest written and processed with
    3000 bins (fine enough to part ferrite 110 from austenite 111)."""
    work = tmp_path_factory.mktemp("steel")
    conf = work / "conf"
    shutil.copytree(Path(__file__).resolve().parents[2] / "conf", conf)
    process = yaml.safe_load((conf / "process.yaml").read_text())
    process["integration"]["npt"] = 3000
    (conf / "process.yaml").write_text(yaml.safe_dump(process))
    described = xrdmap("describe", STEEL)
    manifest = work / "steel.yaml"
    made = xrdmap(
        "init", STEEL, "--poni", PONI, "--steps", "1x3", "--step-um", "50", "--out", manifest
    )
    store = work / "steel.zarr"
    done = xrdmap("--conf", conf, "process", manifest, "--store", store, "--quiet")
    return described, made, done, store


def test_describe_says_what_the_steel_frames_are(steel):
    described = steel[0]
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "nx09_strain: 3 frames in 3 files: nx09_strain_*.mar2300" in text
    assert "format Mar345, 2300 x 2300 uint32" in text and "pixel 150 x 150 um" in text
    assert "positions: none in the files: init needs --steps" in text


def test_steel_store_matches_pyfai_and_shows_ferrite_and_austenite(steel):
    _, made, done, store = steel
    assert made.returncode == 0, made.stderr
    assert done.returncode == 0, done.stderr
    group = sample_group(open_store(str(store)), "nx09_strain")
    assert (group["status"][:] == 0).all()
    ours, tth = group["patterns"][0], group["tth_deg"][:]
    frame = fabio.open(str(STEEL / "nx09_strain_001.mar2300")).data.astype(np.int64)
    ai = pyFAI.load(str(PONI))
    theirs = ai.integrate1d(
        frame,
        3000,
        unit="2th_deg",
        method=("bbox", "csr", "cython"),
        correctSolidAngle=True,
        polarization_factor=0.99,
        mask=frame < 0,
        error_model="poisson",
    )
    np.testing.assert_allclose(tth, theirs.radial, rtol=1e-9)
    seen = theirs.intensity > 0
    worst = np.max(np.abs(ours[seen] - theirs.intensity[seen]) / theirs.intensity[seen])
    assert worst < 1e-4
    wavelength_a = ai.wavelength * 1e10
    d = wavelength_a / (2 * np.sin(np.radians(tth) / 2))
    peaks, _ = find_peaks(ours, prominence=0.05 * np.nanmax(ours))
    for name, expected in STEEL_LINES.items():
        nearest = d[peaks][np.argmin(np.abs(d[peaks] - expected))]
        assert abs(nearest - expected) / expected < 2e-3, (name, nearest)


def _foreign_poni(path, *, distance_mm, centre_px, pixel_um, wavelength_a):
    """A PONI as another program writes it: no Detector line (pixel size and shape
    come from the frames and the manifest). The numbers are those SOURCES.md states
    (its ring fits; the AgBh pixel size is its inference), within 2% and half a bin."""
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    ai = AzimuthalIntegrator(wavelength=wavelength_a * 1e-10)
    ai.setFit2D(distance_mm, *centre_px, pixelX=pixel_um, pixelY=pixel_um)
    path.unlink(missing_ok=True)
    ai.write(str(path))
    text = path.read_text().splitlines()
    path.write_text("\n".join(li for li in text if not li.startswith("Detector")) + "\n")
    return path


def _processed(process_core, manifest, store):
    plan = process_core(manifest, store)
    root = open_store(str(store))
    (name,) = root.attrs["xrdmap"]["samples"]
    return sample_group(root, name), plan.beamtime


def _peak_d(group, wavelength_a, lo_d, hi_d):
    """d of the strongest peak between lo_d and hi_d, and half a bin there, relative."""
    tth, y = group["tth_deg"][:], group["patterns"][0]
    d = wavelength_a / (2 * np.sin(np.radians(tth) / 2))
    inside = np.flatnonzero((d > lo_d) & (d < hi_d))
    top = inside[np.argmax(y[inside])]
    return d[top], 0.5 * (tth[1] - tth[0]) / tth[top]


@pytest.mark.parametrize(
    ("folder", "poni", "pixel_um", "wavelength_a", "lines"),
    [
        # SPE CCD, CeO2 with Mo Ka: 111 at a / sqrt(3) = 3.124 A (a = 5.411 A)
        ("spe_ceo2", (115.95, (521.9, 524.3)), 100, 0.71073, {3.124: (2.9, 3.4)}),
        # MarCCD TIFF, silver behenate: d001 = 58.38 A and d002; SOURCES.md's centre
        # "(568.8, 483.5)" is (row, column): x = 483.5, y = 568.8
        ("tiff_saxs_agbh", (566.9, (483.5, 568.8)), 158, 1.0332,
         {58.38: (45.0, 80.0), 29.19: (25.0, 34.0)}),
    ],
)  # fmt: skip
def test_spe_and_tiff_frames_with_a_poni_naming_no_detector(
    xrdmap, process_core, tmp_path, folder, poni, pixel_um, wavelength_a, lines
):
    distance, centre = poni
    geometry = _foreign_poni(
        tmp_path / "calib.poni",
        distance_mm=distance,
        centre_px=centre,
        pixel_um=pixel_um,
        wavelength_a=wavelength_a,
    )
    described = xrdmap("describe", REAL / folder)
    assert described.returncode == 0 and "pixel size: not in the header" in described.stdout
    args = ["init", REAL / folder, "--poni", geometry, "--steps", "1x1", "--step-um", "1"]
    refused = xrdmap(*args, "--out", tmp_path / "m.yaml")
    assert refused.returncode == 2 and "give geometry.pixel_size_um" in refused.stderr
    made = xrdmap(*args, "--pixel-size-um", pixel_um, "--out", tmp_path / "m.yaml")
    assert made.returncode == 0, made.stderr
    group, beamtime = _processed(process_core, tmp_path / "m.yaml", tmp_path / "s.zarr")
    assert beamtime.sample(group.basename).frame_format == "fabio"
    assert (group["status"][:] == 0).all()
    for expected_d, window in lines.items():
        found, half_bin = _peak_d(group, wavelength_a, *window)
        assert abs(found - expected_d) / expected_d < 0.02 + half_bin, (expected_d, found)


def test_pilatus_cbfs_with_the_headers_geometry(xrdmap, process_core, tmp_path):
    """Two points of a real DLS grid scan (PILATUS3 6M, bz2): the header's geometry,
    uncalibrated, with a warning; Content-MD5 verified for both frames."""
    folder = REAL / "cbf_pilatus"
    made = xrdmap(
        "init", folder, "--geometry-from-header", "--sample", "thau_3_2", "--steps", "1x2",
        "--step-um", "20", "--out", tmp_path / "t.yaml",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "warning: geometry from the frame header of thau_3_2" in made.stdout
    group, beamtime = _processed(process_core, tmp_path / "t.yaml", tmp_path / "t.zarr")
    assert beamtime.count_cutoff == 115897  # the header's
    assert (group["status"][:] == 0).all()
    assert all(c.startswith("md5:") for c in group["input_checksum"][:])
    assert np.isfinite(group["patterns"][:]).all()
