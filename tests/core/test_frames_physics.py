"""Physics of the simulated frames, checked by integrating them with pyFAI."""

import numpy as np
import pytest
from scipy.signal import find_peaks, savgol_filter

WAVELENGTH_A = 1.2398419843320025


def tth_from_cell(hkl, a, b=None, c=None, hexagonal=False):
    """2theta (deg) of a reflection from the lattice alone (no pymatgen)."""
    h, k, l = hkl  # noqa: E741
    b = b or a
    c = c or a
    if hexagonal:
        inv_d2 = 4 / 3 * (h * h + h * k + k * k) / a**2 + l * l / c**2
    else:
        inv_d2 = h * h / a**2 + k * k / b**2 + l * l / c**2
    return 2 * np.degrees(np.arcsin(WAVELENGTH_A * np.sqrt(inv_d2) / 2))


#: phase -> (its strongest reflection, its other strong reflections), from the lattice alone
LATTICE_LINES = {
    "goethite": (
        tth_from_cell((1, 0, 1), 9.96, 3.02, 4.61),
        [
            tth_from_cell(x, 9.96, 3.02, 4.61)
            for x in [(1, 1, 1), (3, 0, 1), (2, 1, 0), (4, 0, 1), (2, 1, 2), (2, 0, 0), (4, 0, 0)]
        ],
    ),
    "lepidocrocite": (
        tth_from_cell((0, 2, 0), 3.07, 12.52, 3.87),
        [
            tth_from_cell(x, 3.07, 12.52, 3.87)
            for x in [(1, 3, 0), (0, 2, 1), (1, 5, 0), (0, 0, 2), (1, 5, 1), (1, 1, 1), (0, 4, 1)]
        ],
    ),
    "magnetite": (
        tth_from_cell((3, 1, 1), 8.3965),
        [tth_from_cell(x, 8.3965) for x in [(2, 2, 0), (4, 0, 0), (1, 1, 1), (2, 2, 2)]],
    ),
    "hematite": (
        tth_from_cell((1, 0, 4), 5.0356, c=13.7489, hexagonal=True),
        [
            tth_from_cell(x, 5.0356, c=13.7489, hexagonal=True)
            for x in [(1, 1, 0), (0, 1, 2), (0, 2, 4), (1, 1, 3)]
        ],
    ),
}
#: Phases without preferred orientation: their strongest line stays the strongest.
UNTEXTURED = ("magnetite", "hematite")


def _peaks(result, n):
    """2theta of the ``n`` highest peaks above the pattern's lower envelope."""
    from scipy.ndimage import minimum_filter1d

    above = result.intensity - minimum_filter1d(result.intensity, 61, mode="nearest")
    idx, _ = find_peaks(above)
    return result.radial[idx[np.argsort(above[idx])[::-1][:n]]]


@pytest.mark.parametrize("phase", sorted(LATTICE_LINES))
def test_single_phase_peaks_sit_on_the_lattice(phase, frame_simulator, point_of, integrate):
    strongest, others = LATTICE_LINES[phase]
    candidates = np.array([strongest, *others])
    for seed in range(3):
        frame = frame_simulator.render(point_of({phase: 1.0}), np.random.default_rng(seed))
        result = integrate(frame)
        bin_deg = result.radial[1] - result.radial[0]
        found = _peaks(result, 3)
        for tth in found:
            assert np.min(np.abs(candidates - tth)) <= bin_deg, f"{phase}: stray peak {tth:.2f}"
        if phase in UNTEXTURED:
            assert abs(found[0] - strongest) <= bin_deg, f"{phase}: strongest at {found[0]:.2f}"
        else:  # texture may reorder, but the main line is always among the strongest
            assert np.min(np.abs(found - strongest)) <= bin_deg


def test_coarse_ferrite_spot_on_the_110_ring(frame_simulator, point_of, integrate):
    frame = frame_simulator.render(
        point_of({"ferrite": 1.0}, {"ferrite": 2}), np.random.default_rng(5)
    )
    result = integrate(frame)
    bin_deg = result.radial[1] - result.radial[0]
    assert abs(_peaks(result, 1)[0] - tth_from_cell((1, 1, 0), 2.8619)) <= bin_deg
    # a spot, not a ring: the reflection covers a small part of its ring's pixels
    maps = frame_simulator.maps
    ring = np.abs(maps.tth_deg - tth_from_cell((1, 1, 0), 2.8619)) < 0.1
    bright = frame.ravel()[ring] > 10 * np.median(frame.ravel()[ring])
    assert 0 < bright.mean() < 0.25


def _assert_no_bragg_peaks(result):
    """Nothing narrow stands above the noise: residual from a smooth curve < 6 sigma."""
    smooth = savgol_filter(result.intensity, 41, 3)
    z = (result.intensity - smooth) / np.maximum(result.sigma, 1e-9)
    assert np.max(z[5:-5]) < 6, f"peak-like excess of {np.max(z):.1f} sigma"


def test_resin_point_shows_the_hump_only(frame_simulator, point_of, integrate):
    result = integrate(frame_simulator.render(point_of({}), np.random.default_rng(1)))
    hump = result.radial[np.argmax(savgol_filter(result.intensity, 31, 3))]
    assert 13.5 < hump < 16.5  # epoxy halo, d ~ 4.7 A
    assert result.intensity.max() > 3 * np.percentile(result.intensity, 10)
    _assert_no_bragg_peaks(result)


def test_fe_without_peaks_is_background_only(frame_simulator, point_of, integrate):
    steel = integrate(frame_simulator.render(point_of({"ferrite": 1.0}), np.random.default_rng(2)))
    resin = integrate(frame_simulator.render(point_of({}), np.random.default_rng(2)))
    _assert_no_bragg_peaks(steel)
    # Fe fluorescence lifts the whole pattern well above resin: not "resin only"
    assert np.median(steel.intensity) > 3 * np.median(resin.intensity)
    # and it is flat: no hump (after solid-angle correction, slope only from polarization)
    smooth = savgol_filter(steel.intensity, 41, 3)
    assert np.ptp(smooth[(steel.radial > 12) & (steel.radial < 30)]) < 0.3 * np.median(smooth)


def test_forward_model_matches_pyfai_calcfrom1d(frame_simulator, integrator, instrument):
    grid = frame_simulator.grid
    profile = 50 + 30 * np.exp(-0.5 * ((grid - 20) / 2.0) ** 2)
    ours = frame_simulator.map_profile(profile) * frame_simulator._sa_pol
    ref = integrator.calcfrom1d(
        grid,
        profile,
        dim1_unit="2th_deg",
        correctSolidAngle=True,
        polarization_factor=instrument.polarization_factor,
    ).ravel()
    np.testing.assert_allclose(ours, ref, rtol=2e-3)


def test_counting_noise_is_poisson(frame_simulator):
    expected = np.full(frame_simulator.maps.tth_deg.size, 40.0)
    frame = frame_simulator.detector_readout(expected, np.random.default_rng(0))
    good = frame.ravel() >= 0
    good &= frame.ravel() < frame_simulator.instrument.count_cutoff
    counts = frame.ravel()[good]
    assert counts.mean() == pytest.approx(40, rel=0.01)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.03)


def test_pilatus_bad_pixel_values(frame_simulator, point_of):
    frame = frame_simulator.render(point_of({"goethite": 1.0}), np.random.default_rng(0)).ravel()
    cutoff = frame_simulator.instrument.count_cutoff
    assert frame.dtype == np.int32
    assert (frame[frame_simulator.defects.dead] == -1).all()
    assert (frame[frame_simulator.defects.hot] == cutoff).all()
    assert frame.max() <= cutoff


def test_texture_changes_peak_ratios(frame_simulator, point_of):
    """Preferred orientation: the lepidocrocite (020)/(130) ratio varies point to point."""
    ratios = []
    point = point_of({"lepidocrocite": 1.0})
    for r in (0.6, 0.8, 1.0, 1.25, 1.6):
        texture = np.ones_like(point.texture_r)
        texture[frame_simulator.phase_names.index("lepidocrocite")] = r
        prof = frame_simulator.powder_profile(point.fractions, texture)
        g = frame_simulator.grid
        ratios.append(prof[np.abs(g - 11.37) < 0.05].max() / prof[np.abs(g - 28.8) < 0.3].max())
    assert np.std(ratios) / np.mean(ratios) > 0.1
