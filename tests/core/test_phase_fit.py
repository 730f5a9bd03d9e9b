"""The phase fit on frames from the simulator's forward model, integrated by pyFAI:
weight fractions against the simulated ones, honest uncertainties, line shapes
refined from a map's mean pattern, and unexplained intensity where a line belongs to
no known phase."""

import numpy as np
import pytest

from xrdmap import phase_fit
from xrdmap.domain import two_theta

RUST = ("magnetite", "goethite", "lepidocrocite")


@pytest.fixture(scope="module")
def rust_map(frame_simulator, point_of, integrate, reference_lines, phases):
    """40 rust points of random composition (and resin), rendered and integrated."""
    rng = np.random.default_rng(5)
    names = frame_simulator.phase_names
    volumes, patterns, sigmas = [], [], []
    for _ in range(40):
        share = rng.dirichlet(np.ones(3)) * rng.uniform(0.5, 1.0)
        point = point_of(dict(zip(RUST, share, strict=True)))
        point = type(point)(
            fractions=point.fractions,
            spots=point.spots,
            fe_signal=point.fe_signal,
            texture_r=np.where(
                [n in ("goethite", "lepidocrocite") for n in names],
                np.exp(rng.normal(0, 0.35, len(names))),
                1.0,
            ),
        )
        result = integrate(frame_simulator.render(point, rng))
        volumes.append(point.fractions[:-1])
        patterns.append(result.intensity)
        sigmas.append(result.sigma)
    tth = result.radial
    known = phase_fit.known_phases(phases, reference_lines)
    return tth, known, np.array(volumes), np.array(patterns), np.array(sigmas)


def _refined(rust_map, wavelength):
    tth, known, _, patterns, sigmas = rust_map
    return phase_fit.map_line_shape(tth, wavelength, known, patterns, sigmas)


def test_weight_fractions_match_the_simulated_ones(rust_map, instrument):
    tth, known, volumes, patterns, sigmas = rust_map
    wl = instrument.wavelength_a
    shape = _refined(rust_map, wl)
    fits = phase_fit.fit_points(phase_fit.build_basis(tth, wl, known, shape), patterns, sigmas)
    names = [p.name for p in known]
    density = np.array([p.density_g_cm3 for p in known])
    mass = volumes * density
    truth = mass / mass.sum(axis=1, keepdims=True)
    for name in RUST:
        k = names.index(name)
        err = fits.weight_fraction[:, k] - truth[:, k]
        assert np.abs(err).mean() <= 0.03, f"{name}: MAE {np.abs(err).mean():.3f}"
        # the stated uncertainty is honest: errors mostly within 3 sigma
        within = np.abs(err) <= 3 * fits.weight_fraction_sigma[:, k] + 0.01
        assert within.mean() >= 0.85, f"{name}: {within.mean():.2f} within 3 sigma"
    # coarse-grained phases are seen, not quantified
    assert np.isnan(fits.weight_fraction[:, names.index("ferrite")]).all()
    assert (fits.unexplained == 0).mean() >= 0.95
    assert np.nanmedian(fits.reduced_chi2) < 2.0


def test_line_shapes_refined_from_the_mean_pattern(rust_map, instrument):
    """Shapes near the simulated ones; a zero shift imposed by moving the axis is
    found again."""
    tth, known, _, patterns, sigmas = rust_map
    wl = instrument.wavelength_a
    shape = _refined(rust_map, wl)
    assert abs(shape.zero_deg) < 0.01
    assert abs(shape.size_nm["lepidocrocite"] / 12.0 - 1) < 0.25  # phases.yaml: 12 nm
    shifted = phase_fit.map_line_shape(tth - 0.03, wl, known, patterns, sigmas)
    assert shifted.zero_deg == pytest.approx(shape.zero_deg - 0.03, abs=0.01)
    record = phase_fit.LineShape.from_record(shape.to_record())
    assert record == shape


def test_a_line_of_no_known_phase_is_unexplained(rust_map, instrument):
    tth, known, _, patterns, sigmas = rust_map
    wl = instrument.wavelength_a
    basis = phase_fit.build_basis(tth, wl, known, _refined(rust_map, wl))
    # halite (200), d = 2.820 A: no known phase has a line within 1% of it
    at = float(two_theta(np.array([2.820]), wl)[0])
    line = 60.0 * np.exp(-0.5 * ((tth - at) / 0.05) ** 2)
    with_line = patterns[:5] + line
    fits = phase_fit.fit_points(basis, with_line, np.sqrt(sigmas[:5] ** 2 + line))
    assert (fits.unexplained >= phase_fit.UNEXPLAINED_SIGMAS).all()
    assert np.allclose(fits.unexplained_tth, at, atol=0.1)


def test_invalid_points_stay_empty(rust_map, instrument):
    tth, known, _, patterns, sigmas = rust_map
    wl = instrument.wavelength_a
    basis = phase_fit.build_basis(tth, wl, known, phase_fit.LineShape.initial(known))
    bad = patterns[:2].copy()
    bad[0, 3] = np.nan
    fits = phase_fit.fit_points(basis, bad, sigmas[:2])
    assert np.isnan(fits.weight_fraction[0]).all() and np.isnan(fits.unexplained[0])
    assert np.isfinite(fits.unexplained[1])
