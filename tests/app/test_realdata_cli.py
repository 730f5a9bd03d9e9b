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
pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"real data folder {REAL} absent (see the guide: Real data)"
)
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
def steel(xrdmap, tmp_path_factory):
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
