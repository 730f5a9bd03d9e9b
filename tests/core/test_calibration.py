"""Calibration: reliability, expected calibration error, the temperature that fits."""

import numpy as np
import pytest

from xrdmap.calibration import (
    ensemble_confidence,
    expected_calibration_error,
    fit_temperature,
    reliability,
)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_calibrated_confidences_have_a_small_ece_overconfident_ones_do_not():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    truth = rng.random(20000) < p  # a point with confidence p holds the class with prob. p
    assert expected_calibration_error(truth, p) < 0.02
    sharp = np.where(p > 0.5, 0.99, 0.01)  # right in direction, far too sure
    assert expected_calibration_error(truth, sharp) > 0.2
    r = reliability(truth, p)
    assert sum(r["count"]) == 20000 and len(r["mean_confidence"]) == 10
    assert r["fraction_positive"][9] == pytest.approx(0.95, abs=0.02)


def test_an_empty_bin_is_none_and_no_point_is_nan():
    r = reliability(np.array([1, 0]), np.array([0.95, 0.05]))
    assert r["count"][5] == 0 and r["mean_confidence"][5] is None
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_the_temperature_of_overconfident_members_is_found():
    """Logits three times too large: the fitted temperature is about 3, and the
    calibrated confidences have a small ECE; unknown labels (-1) are not counted."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (4000, 3))
    labels = (rng.random(z.shape) < _sigmoid(z)).astype(int)
    logits = np.stack([3 * z + rng.normal(0, 0.05, z.shape) for _ in range(4)])
    labels[:100, 2] = -1
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    conf = ensemble_confidence(logits, t)
    assert expected_calibration_error(labels[100:, 0], conf[100:, 0]) < 0.03
    assert fit_temperature(logits, np.full(labels.shape, -1)) == 1.0


def test_a_few_labels_all_right_do_not_sharpen_without_limit():
    """29 validation points the members all get right: the likelihood alone would
    sharpen to the bound; the prior keeps the temperature within a factor ~2 of 1."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, (29, 9))
    logits = np.stack([np.where(labels == 1, 3.0, -3.0) + rng.normal(0, 0.3, labels.shape)] * 5)
    assert 0.4 < fit_temperature(logits, labels) < 1.0


def test_an_excluded_class_is_gated_in_each_member_before_the_mean():
    """ "Fe without peaks" times (1 - Fe(BCC)) (1 - Fe(FCC)), member by member: the mean
    of gated members, not the gated mean; the other classes are untouched."""
    from xrdmap.classes import CLASS_NAMES, exclusions

    col = {c: i for i, c in enumerate(CLASS_NAMES)}
    rules = exclusions()
    assert rules == [(col["Fe without peaks"], [col["Fe(BCC)"], col["Fe(FCC)"]])]
    logits = np.random.default_rng(3).normal(0, 2, (2, 5, len(CLASS_NAMES)))
    plain = _sigmoid(logits)
    gated = ensemble_confidence(logits, 1.0, rules)
    fwp, bcc, fcc = col["Fe without peaks"], col["Fe(BCC)"], col["Fe(FCC)"]
    expected = (plain[..., fwp] * (1 - plain[..., bcc]) * (1 - plain[..., fcc])).mean(axis=0)
    np.testing.assert_allclose(gated[:, fwp], expected)
    others = [i for i in range(len(CLASS_NAMES)) if i != fwp]
    np.testing.assert_allclose(gated[:, others], plain.mean(axis=0)[:, others])
    assert not np.allclose(gated[:, fwp], ensemble_confidence(logits, 1.0)[:, fwp])
