"""A model's domain: what separates patterns from it, and patterns resampled into it."""

import numpy as np
import pytest

from xrdmap.domain import (
    DomainError,
    PatternDomain,
    check_coverage,
    d_spacing,
    domain_differences,
    resample,
    two_theta,
)
from xrdmap.pattern_files import read_pattern

MODEL = PatternDomain(
    np.linspace(9.74, 40.63, 300),
    1.2398,
    {"unit": "2th_deg", "correct_solid_angle": True, "polarization_factor": 0.99},
)


def _gaussian(tth, centre, fwhm=0.2):
    return np.exp(-4 * np.log(2) * ((tth - centre) / fwhm) ** 2)


def test_bragg_round_trip_and_unreachable_d():
    tth = np.array([10.0, 25.0, 90.0, 150.0])
    np.testing.assert_allclose(two_theta(d_spacing(tth, 1.5418), 1.5418), tth)
    assert np.isnan(two_theta(np.array([0.5]), 1.5418))[0]  # d below lambda/2


def test_the_same_domain_has_no_difference_and_resamples_to_itself():
    patterns = np.random.default_rng(0).random((3, 300)) * 100
    assert domain_differences(MODEL, MODEL) == []
    out, coverage = resample(patterns, MODEL, MODEL)
    assert coverage == 1.0
    np.testing.assert_allclose(out, patterns, rtol=1e-5)


def test_differences_name_wavelength_axis_and_corrections():
    other = PatternDomain(
        np.linspace(5, 30, 250),
        0.7093,
        {"unit": "2th_deg", "correct_solid_angle": False, "polarization_factor": 0.98},
    )
    differ = domain_differences(MODEL, other)
    assert any(d.startswith("wavelength 0.7093 A, the model's is 1.2398 A") for d in differ)
    assert any("2theta axis 5.000-30.000 deg in 250 bins" in d for d in differ)
    assert any("correct_solid_angle False" in d for d in differ)
    assert not any("polarization" in d for d in differ)  # 0.01 apart: the same


def test_a_line_lands_at_its_d_spacing_on_the_model_axis():
    """A Cu K-alpha scan in 0.01 deg steps of one line at d = 2.70 A: on the model's
    axis (1.2398 A) the line sits at 2theta(2.70 A), the uncovered bins hold the edge
    intensity, and the fine noise is averaged over a model bin."""
    cu = 1.5418
    tth = np.arange(5.0, 35.0, 0.01)
    rng = np.random.default_rng(1)
    line = 2.0 * np.degrees(np.arcsin(cu / (2 * 2.70)))
    pattern = 10 + 100 * _gaussian(tth, line) + rng.normal(0, 1, tth.size)
    out, coverage = resample(pattern[None], PatternDomain(tth, cu), MODEL)
    expected = 2.0 * np.degrees(np.arcsin(MODEL.wavelength_a / (2 * 2.70)))
    assert abs(MODEL.tth_deg[np.argmax(out[0])] - expected) < 0.11  # one bin
    top = two_theta(np.array([cu / (2 * np.sin(np.radians(35.0) / 2))]), 1.2398)[0]
    uncovered = MODEL.tth_deg > top
    assert coverage == pytest.approx(1 - uncovered.mean(), abs=0.01)
    edge = out[0, uncovered]
    assert np.ptp(edge) == 0 and abs(edge[0] - 10) < 1  # flat: the background, no peak
    flat = out[0, (MODEL.tth_deg > 12) & (MODEL.tth_deg < 18)]
    assert flat.std() < 0.5  # the noise (sigma 1 per 0.01 deg) averaged over ~10 points


def test_too_little_coverage_is_refused():
    source = PatternDomain(np.linspace(60, 120, 500), 1.5418)  # d 0.89-1.54 A
    _, coverage = resample(np.ones((1, 500)), source, MODEL)
    assert coverage == 0.0
    with pytest.raises(DomainError, match="cover 0% of the model's range"):
        check_coverage(coverage, source, MODEL)


def test_nan_rows_stay_nan():
    patterns = np.ones((2, 300))
    patterns[1] = np.nan
    other = PatternDomain(MODEL.tth_deg, 1.0)
    out, _ = resample(patterns, other, MODEL)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_pattern_files_read_what_instruments_write(tmp_path):
    tth = np.linspace(10, 30, 50)
    text = "\n".join(f"{t:.3f}, {i:.1f}" for t, i in zip(tth[::-1], tth[::-1] * 2, strict=True))
    path = tmp_path / "scan.csv"
    path.write_text("Sample: rust\nAngle,Counts\n" + text + "\n")
    got_tth, got_i = read_pattern(path)
    np.testing.assert_allclose(got_tth, tth, atol=1e-3)  # sorted ascending
    np.testing.assert_allclose(got_i, 2 * got_tth, atol=0.1)
    xye = tmp_path / "scan.xye"
    xye.write_text("# 2theta I sigma\n" + "\n".join(f"{t} {t} 1.0" for t in tth))
    assert len(read_pattern(xye)[0]) == 50


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.raw", b"RAW1.01\x00\x00", "binary format; export the pattern as two columns"),
        ("scan.xy", b"\xff\xfe\x00binary", "not a text file"),
        ("short.xy", b"10 1\n11 2\n", "2 lines of 2theta and intensity"),
        ("broken.xy", b"10 1\n" * 5 + b"11 two\n", "line 6: not two numbers"),
        ("radians.xy", "\n".join(f"{0.1 * i} 1" for i in range(1, 40)).encode(), None),
        ("d.xy", "\n".join(f"{i} 1" for i in range(100, 300, 5)).encode(), "between 0 and 180"),
    ],
)
def test_pattern_files_refuse_in_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    if message is None:  # small angles are plausible 2theta (a high-energy beamline)
        assert len(read_pattern(path)[0]) == 39
        return
    with pytest.raises(Exception, match=message) as caught:
        read_pattern(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
