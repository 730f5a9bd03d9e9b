"""`xrdmap classify`: one measured 1D pattern from another instrument, through the
model's domain, with its peaks explained or not."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from models.classify import classify_pattern
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import load_phases
from xrdmap.domain import d_spacing, two_theta
from xrdmap.peaks import D_TOLERANCE
from xrdmap.phases import all_reference_lines

pytestmark = pytest.mark.slow
CU = 1.5418
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "patterns_1d"


@pytest.fixture(scope="module")
def measured(tiny_store):
    """A goethite-bearing pattern of the tiny store: (2theta, intensity, wavelength)."""
    root = zarr.open_group(tiny_store, mode="r")
    group = root["samples/B_marine"]
    patterns = group["patterns"][:]
    strongest = int(np.nanargmax(np.nanmax(patterns, axis=1)))
    wavelength = 1.2398419843320025
    return group["tth_deg"][:], patterns[strongest].astype(float), wavelength


def _write(path: Path, tth, intensity) -> Path:
    path.write_text(
        "# 2theta intensity\n"
        + "\n".join(f"{t:.6f} {i:.6f}" for t, i in zip(tth, intensity, strict=True))
    )
    return path


def _classify(registry, path, wavelength) -> dict:
    """What `xrdmap classify --json` prints, from the core in this process."""
    return classify_pattern(path, wavelength, registry, load_phases()).record()


def test_another_wavelength_and_scale_give_the_same_answer(measured, two_versions, tmp_path):
    """The same pattern at the model's wavelength, and as a Cu K-alpha scan of 50x the
    counts: the same d-spacings, so the same confidences and the same peaks."""
    registry = two_versions[0]
    tth, intensity, wavelength = measured
    here = _write(tmp_path / "native.xy", tth, intensity)
    cu_tth = two_theta(d_spacing(tth, wavelength), CU)
    cu = _write(tmp_path / "cu.xy", cu_tth, 50 * intensity)
    a, b = _classify(registry, here, wavelength), _classify(registry, cu, CU)
    assert list(a["confidences"]) == list(CLASS_NAMES) and a["model"] == "v0002"
    assert list(a["spread"]) == list(CLASS_NAMES)  # an ensemble: members' spread
    assert a["coverage"] == b["coverage"] == 1.0 and a["calibrated"] is True
    for name in CLASS_NAMES:
        assert a["confidences"][name] == pytest.approx(b["confidences"][name], abs=2e-3)
    assert b["intensity_scale"] == pytest.approx(a["intensity_scale"] / 50, rel=1e-3)
    assert [p["d_a"] for p in a["peaks"]] == pytest.approx([p["d_a"] for p in b["peaks"]], abs=2e-3)
    assert a["peaks"] and all(p["phases"] for p in a["peaks"])  # simulated: known phases only


def test_a_peak_no_known_phase_has_is_reported_and_abstains(
    measured, two_versions, xrdmap, tmp_path, capsys
):
    registry = two_versions[0]
    tth, intensity, wavelength = measured
    lines = all_reference_lines(
        load_phases(), wavelength_a=wavelength, tth_range_deg=(tth[0], tth[-1])
    )
    known = np.concatenate([ref.d_a for ref in lines.values()])
    free = next(
        d for d in np.arange(5.5, 2.0, -0.01) if np.all(np.abs(known - d) > 2 * D_TOLERANCE * d)
    )
    where = float(two_theta(np.array([free]), wavelength)[0])
    bump = 3 * np.nanmax(intensity) * np.exp(-4 * np.log(2) * ((tth - where) / 0.15) ** 2)
    path = _write(tmp_path / "foreign.xy", tth, intensity + bump)
    out = xrdmap("classify", path, "--wavelength", wavelength, "--registry", registry, "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    unexplained = record["unexplained_peaks"]
    assert len(unexplained) == 1 and unexplained[0]["d_a"] == pytest.approx(free, rel=0.01)
    assert record["abstain"] and any(
        "no known phase explains" in r for r in record["abstain_reasons"]
    )
    from app.cli import main  # the same command in this process: Keras is loaded already

    assert (
        main(["classify", str(path), "--wavelength", str(wavelength), "--registry", registry]) == 0
    )
    text = capsys.readouterr().out
    assert "UNEXPLAINED" in text and "Verdict: abstain" in text
    assert all(name in text for name in CLASS_NAMES)


def test_refusals_are_one_line(two_versions, xrdmap, tmp_path):
    registry = two_versions[0]
    far = _write(tmp_path / "far.xy", np.linspace(70, 120, 200), np.ones(200))
    for args, message in [
        ((far, "--wavelength", CU), "cover 0% of the model's range"),
        ((tmp_path / "none.xy", "--wavelength", CU), "none.xy"),
        ((far, "--wavelength", 154), "expected Angstrom"),
    ]:
        out = xrdmap("classify", *args, "--registry", registry)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    missing = xrdmap("classify", far, "--registry", registry)
    assert missing.returncode == 2 and "--wavelength" in missing.stderr


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} absent (see the guide)")
@pytest.mark.parametrize(
    ("pattern", "wavelength", "line_d", "phase"),
    [
        ("rruff_hematite_goethite_CuKa/goethite_rruff_aqp.xy", CU, 4.18, "goethite"),
        ("rruff_hematite_goethite_CuKa/hematite_rruff_aqp.xy", CU, 3.68, "hematite"),
        (
            "steel_ferrite_austenite_synchrotron/nx09_strain_001_pyFAI_2th.xy",
            0.12398,
            2.08,
            "austenite",
        ),
    ],
)
def test_real_patterns_are_read_and_their_lines_explained(
    two_versions, xrdmap, pattern, wavelength, line_d, phase
):
    """SOURCES.md B1/B3: a measured line of each phase is found at its d and explained
    by that phase's reference lines. (What the model says of them is issue 13's real
    pattern table, not asserted here.)"""
    record = _classify(two_versions[0], REAL / pattern, wavelength)
    near = [p for p in record["peaks"] if abs(p["d_a"] - line_d) < 0.01 * line_d]
    assert near and phase in near[0]["phases"]
