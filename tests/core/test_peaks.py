"""Peaks of a measured pattern, explained by the known phases' lines or not."""

import numpy as np

from xrdmap.domain import d_spacing, two_theta
from xrdmap.peaks import D_TOLERANCE, find_pattern_peaks

WAVELENGTH = 1.2398


def _line_free_d(reference_lines) -> float:
    """A d-spacing (2-6 A) farther than twice the match tolerance from every known line."""
    lines = np.concatenate([ref.d_a for ref in reference_lines.values()])
    for d in np.arange(6.0, 2.0, -0.01):
        if np.all(np.abs(lines - d) > 2 * D_TOLERANCE * d):
            return float(d)
    raise AssertionError("no line-free d-spacing")


def test_goethite_lines_are_explained_and_a_foreign_line_is_not(reference_lines):
    goethite = reference_lines["goethite"]
    tth = np.arange(10.0, 45.0, 0.02)
    rng = np.random.default_rng(0)
    pattern = 50 + 0.5 * (tth - 10)  # a sloping background
    strongest = np.argsort(goethite.intensity)[::-1][:3]
    for i in strongest:
        height = 200 * goethite.intensity[i] / goethite.intensity.max()
        pattern = pattern + height * np.exp(
            -4 * np.log(2) * ((tth - goethite.tth_deg[i]) / 0.25) ** 2
        )
    foreign_d = _line_free_d(reference_lines)
    foreign_tth = float(two_theta(np.array([foreign_d]), WAVELENGTH)[0])
    pattern = pattern + 150 * np.exp(-4 * np.log(2) * ((tth - foreign_tth) / 0.2) ** 2)
    pattern = rng.poisson(pattern).astype(float)

    peaks = find_pattern_peaks(tth, pattern, WAVELENGTH, reference_lines)
    explained = [p for p in peaks if "goethite" in p.phases]
    unexplained = [p for p in peaks if not p.phases]
    assert len(explained) >= 3
    for i in strongest:
        assert any(abs(p.d_a - goethite.d_a[i]) < 0.01 * goethite.d_a[i] for p in explained)
    assert len(unexplained) == 1
    assert (
        abs(unexplained[0].d_a - foreign_d) < 0.005 * foreign_d and unexplained[0].significance > 10
    )
    assert abs(unexplained[0].d_a - d_spacing(unexplained[0].tth_deg, WAVELENGTH)) < 1e-9


def test_noise_alone_gives_no_peak(reference_lines):
    tth = np.arange(10.0, 40.0, 0.02)
    noise = np.random.default_rng(1).poisson(np.full(tth.size, 100.0)).astype(float)
    assert find_pattern_peaks(tth, noise, WAVELENGTH, reference_lines) == []
