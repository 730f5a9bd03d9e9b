"""Synthetic pre-training patterns from the CIF reference lines (models/synthetic.py)."""

import numpy as np
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig
from xrdmap.synthetic import UNKNOWN, NoiseModel, PatternSynthesizer, background_library

TTH = np.linspace(9.75, 40.6, 300)


def _synth(phases, reference_lines, instrument, names, level=40.0):
    only = PhasesConfig(phases={n: phases.phases[n] for n in names})
    backgrounds = np.full((3, TTH.size), level)
    noise = NoiseModel(gain=np.full(TTH.size, 0.003))
    lines = {n: reference_lines[n] for n in names}
    return PatternSynthesizer(TTH, lines, only, instrument.wavelength_a, backgrounds, noise)


def test_a_seen_phase_peaks_on_its_reference_lines(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, ["magnetite"])
    x, y = synth.draw(400, np.random.default_rng(0))
    assert x.shape == (400, TTH.size) and x.dtype == np.float32 and y.dtype == np.int8
    fe3o4 = y[:, CLASS_NAMES.index("Fe3O4")]
    assert 0.1 < fe3o4.mean() < 0.35  # present with p = 0.3, some of those too weak to see
    others = [c for c in CLASS_NAMES if c not in ("Fe3O4", "resin only", "Fe without peaks")]
    assert (y[:, [CLASS_NAMES.index(c) for c in others]] == 0).all()
    assert (y[:, CLASS_NAMES.index("resin only")] == UNKNOWN).all()
    assert (y[:, CLASS_NAMES.index("Fe without peaks")] == UNKNOWN).all()
    lines = reference_lines["magnetite"].tth_deg
    tops = TTH[x[fe3o4 == 1].argmax(axis=1)]
    assert np.abs(tops[:, None] - lines[None, :]).min(axis=1).max() < 0.3


def test_labels_follow_what_is_seen_above_the_noise(phases, reference_lines, instrument):
    synth = _synth(phases, reference_lines, instrument, ["magnetite"])
    x, y = synth.draw(2000, np.random.default_rng(1))
    excess = (x.max(axis=1) - np.median(x, axis=1)) / np.median(x, axis=1)
    seen = y[:, CLASS_NAMES.index("Fe3O4")] == 1
    assert np.median(excess[seen]) > 0.5 and np.median(excess[~seen]) < 0.1
    assert excess[seen].min() > 0.05  # 10% above the rest, less the noise of one bin


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
    x, y = synth.draw(20, np.random.default_rng(0))
    assert np.isfinite(x).all() and set(np.unique(y)) <= {UNKNOWN, 0, 1}
