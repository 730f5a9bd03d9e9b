"""Synthetic pre-training patterns from the CIF reference lines (models/synthetic.py)."""

import numpy as np
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig
from xrdmap.synthetic import (
    LATTICE_SPREAD,
    OTHER,
    RESIN,
    STEEL,
    UNKNOWN,
    ZERO_SHIFT_DEG,
    NoiseModel,
    PatternSynthesizer,
    _pseudo_voigt,
    background_library,
)

TTH = np.linspace(9.75, 40.6, 300)


def test_the_in_place_pseudo_voigt_is_the_formula_to_the_bit():
    """Computed in place for speed, operation by operation as the formula reads: the
    synthetic patterns, and so the trained weights, stay what they were."""
    rng = np.random.default_rng(4)
    dx = rng.uniform(-3, 3, (50, 1200))
    fwhm, eta = rng.uniform(0.02, 2, (50, 1)), rng.uniform(0, 1, (50, 1))
    u = (2 * dx / fwhm) ** 2
    expected = eta / (1 + u) + (1 - eta) * np.exp(-np.log(2) * u)
    np.testing.assert_array_equal(_pseudo_voigt(dx.copy(), fwhm, eta), expected)
    assert _pseudo_voigt(np.zeros((1, 1)), np.ones((1, 1)), np.full((1, 1), 0.3))[0, 0] == 1.0


def _synth(phases, reference_lines, instrument, names, level=40.0, kinds=None):
    only = PhasesConfig(phases={n: phases.phases[n] for n in names})
    backgrounds = np.full((3 if kinds is None else len(kinds), TTH.size), level)
    noise = NoiseModel(gain=np.full(TTH.size, 0.003))
    lines = {n: reference_lines[n] for n in names}
    return PatternSynthesizer(
        TTH, lines, only, instrument.wavelength_a, backgrounds, noise, kinds=kinds
    )


def test_a_seen_phase_peaks_on_its_reference_lines(
    phases, reference_lines, instrument, monkeypatch
):
    import xrdmap.synthetic

    monkeypatch.setattr(xrdmap.synthetic, "HALO_FRACTION", 0.0)  # a halo's top is no line
    synth = _synth(phases, reference_lines, instrument, ["magnetite"])
    x, y = synth.draw(400, np.random.default_rng(0))
    assert x.shape == (400, TTH.size) and x.dtype == np.float32 and y.dtype == np.int8
    fe3o4 = y[:, CLASS_NAMES.index("Fe3O4")]
    assert 0.1 < fe3o4.mean() < 0.35  # present with p = 0.3, some of those too weak to see
    others = [c for c in CLASS_NAMES if c not in ("Fe3O4", "resin only", "Fe without peaks")]
    assert (y[:, [CLASS_NAMES.index(c) for c in others]] == 0).all()
    assert (y[:, CLASS_NAMES.index("resin only")] == UNKNOWN).all()
    assert (y[:, CLASS_NAMES.index("Fe without peaks")] == UNKNOWN).all()
    # within a lattice change and a zero shift of a reference line (and half a bin)
    lines = reference_lines["magnetite"].tth_deg
    moved = np.degrees(2 * np.tan(np.radians(lines) / 2)) * LATTICE_SPREAD["powder"]
    tops = TTH[x[fe3o4 == 1].argmax(axis=1)]
    off = np.abs(tops[:, None] - lines[None, :]) - moved[None, :] - ZERO_SHIFT_DEG
    assert off.min(axis=1).max() < np.diff(TTH).mean()


def test_labels_follow_what_is_seen_above_the_noise(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, ["magnetite"])
    x, y = synth.draw(2000, np.random.default_rng(1))
    excess = (x.max(axis=1) - np.median(x, axis=1)) / np.median(x, axis=1)
    seen = y[:, CLASS_NAMES.index("Fe3O4")] == 1
    assert np.median(excess[seen]) > 0.5 and np.median(excess[~seen]) < 0.1
    assert excess[seen].min() > 0.05  # 10% above the rest, less the noise of one bin


def test_widths_run_from_nanocrystalline_to_the_instrument(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, ["magnetite"], level=1.0)
    x, y = synth.draw(1500, np.random.default_rng(3))
    strong = x[(y[:, CLASS_NAMES.index("Fe3O4")] == 1) & (x.max(axis=1) > 5)]
    widths = [(row > (row.max() + 1) / 2).sum() * np.diff(TTH).mean() for row in strong - 1]
    assert min(widths) < 0.3 and max(widths) > 1.5  # deg above half height


def test_what_the_background_came_from_labels_resin_and_steel(phases, reference_lines, instrument):
    """A steel (resin) background with no phase seen is "Fe without peaks" ("resin
    only"); with Fe(BCC) seen, or from elsewhere, it is not; with only magnetite seen on
    steel, "Fe without peaks" is unknown (does steel still fill half the beam?); altered
    or of unknown origin, unknown."""
    kinds = np.array([STEEL, RESIN, OTHER, UNKNOWN])
    synth = _synth(phases, reference_lines, instrument, ["ferrite", "magnetite"], kinds=kinds)
    rng = np.random.default_rng(4)
    background, drawn_kinds = synth._backgrounds(4000, rng)
    flat = np.ptp(background, axis=1) < 1e-9
    altered = ~flat | (background[:, 0] < 39.0 * np.exp(-4 * 0.3))  # a halo, or scaled down
    assert (drawn_kinds[altered] == UNKNOWN).all() and 0.15 < altered.mean() < 0.35
    _, y = synth.draw(4000, np.random.default_rng(4))
    fwp, resin = y[:, CLASS_NAMES.index("Fe without peaks")], y[:, CLASS_NAMES.index("resin only")]
    bcc, magnetite = (y[:, CLASS_NAMES.index(c)] == 1 for c in ("Fe(BCC)", "Fe3O4"))
    assert (fwp[bcc | magnetite] != 1).all() and (resin[bcc | magnetite] != 1).all()
    assert ((fwp == UNKNOWN) & (resin == 0) & magnetite & ~bcc).sum() > 50  # rust on steel
    assert ((fwp == 0) & (resin == 0) & bcc).sum() > 50
    assert (fwp == 1).sum() > 200 and (resin == 1).sum() > 200
    assert ((fwp == 1) & (resin == 1)).sum() == 0
    unknown_origin = (fwp == UNKNOWN) & (resin == UNKNOWN)
    assert ((resin == UNKNOWN) <= (fwp == UNKNOWN)).all() and 0.3 < unknown_origin.mean() < 0.5


def test_coarse_grains_give_sharp_lines(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, ["ferrite"])
    x, y = synth.draw(300, np.random.default_rng(2))
    bcc = y[:, CLASS_NAMES.index("Fe(BCC)")] == 1
    assert bcc.any()
    row = x[bcc][np.argmax(x[bcc].max(axis=1))]
    above_half = row > (row.max() + np.median(row)) / 2
    assert above_half.sum() <= 3  # one grain: a line about one 0.1 deg bin wide


def test_draws_are_reproducible(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, list(phases.phases))
    a, ya = synth.draw(50, np.random.default_rng(5))
    b, yb = synth.draw(50, np.random.default_rng(5))
    c, _ = synth.draw(50, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(a, c)


def test_noise_model_and_backgrounds_from_real_patterns():
    rng = np.random.default_rng(0)
    patterns = rng.uniform(5, 50, size=(40, TTH.size))
    gain = np.linspace(0.001, 0.01, TTH.size)
    noise = NoiseModel.from_patterns(patterns, np.sqrt(gain * patterns))
    np.testing.assert_allclose(noise.gain, gain, rtol=1e-5)
    patterns[3] = np.nan
    peaked = np.full((1, TTH.size), 20.0)
    peaked[0, 100] = 500.0
    library = background_library(np.concatenate([patterns, peaked]))
    assert library.shape == (40, TTH.size)  # the NaN row is dropped
    assert library[-1].max() == pytest.approx(20.0)  # the peak is not background
    with pytest.raises(ValueError, match="no valid pattern"):
        NoiseModel.from_patterns(np.zeros((2, 3)), np.zeros((2, 3)))


def test_unknown_targets_add_nothing_to_the_loss():
    from models.network import BalancedBinaryCrossentropy

    loss = BalancedBinaryCrossentropy([2.0, 1.0, 1.0])
    pred = np.array([[0.9, 0.2, 0.6]], dtype=np.float32)
    with_unknown = float(loss(np.array([[1.0, 0.0, -1.0]]), pred))
    expected = -(2.0 * np.log(0.9) + np.log(0.8)) / 2
    assert with_unknown == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_store_synthesizer_uses_the_store_axis_and_wavelength(tiny_store, phases, instrument):
    import zarr

    from xrdmap.store import stored_wavelength_a
    from xrdmap.synthetic import store_synthesizer

    root = zarr.open_group(tiny_store, mode="r")
    assert stored_wavelength_a(root) == pytest.approx(instrument.wavelength_a)
    synth = store_synthesizer(tiny_store, phases, n_backgrounds=50, seed=0)
    np.testing.assert_array_equal(synth.tth, root["samples/A_urban/tth_deg"][:])
    assert synth.backgrounds.shape == (50, synth.tth.size)
    assert (synth.kinds == UNKNOWN).all()  # no phase fit: where a point lies is unknown
    x, y = synth.draw(20, np.random.default_rng(0))
    assert np.isfinite(x).all() and set(np.unique(y)) <= {UNKNOWN, 0, 1}


@pytest.mark.slow
def test_backgrounds_know_steel_and_resin_from_the_phase_fit(fitted_store, phases, tiny_beamtime):
    from xrdmap.cross_section import point_kinds
    from xrdmap.simulate.expert import load_truth
    from xrdmap.store import open_store, random_valid_points
    from xrdmap.synthetic import background_kinds, store_synthesizer

    synth = store_synthesizer(fitted_store, phases, n_backgrounds=400, seed=0)
    assert {STEEL, RESIN, OTHER} <= set(synth.kinds.tolist())
    drawn = random_valid_points(open_store(fitted_store), 400, 0)
    np.testing.assert_array_equal(
        background_kinds(fitted_store, drawn.samples, drawn.points), synth.kinds
    )
    for sample in ("A_urban", "B_marine"):  # against the simulator's truth
        where = point_kinds(fitted_store, sample)
        truth = load_truth(tiny_beamtime.truth_dir, [sample])
        steel = truth[["Fe without peaks", "Fe(BCC)", "Fe(FCC)"]].to_numpy().any(axis=1)
        assert steel[where.steel].mean() > 0.9 and where.steel.sum() >= 0.8 * steel.sum()
        resin = truth["resin only"].to_numpy() == 1
        assert resin[where.resin].mean() > 0.95 and where.resin.sum() >= 0.8 * resin.sum()
        assert not (where.resin & (where.steel | where.rust)).any()
