"""Whether a confidence means what it says: reliability, expected calibration error,
and the temperature that calibrates an ensemble's logits on held-out labels.

A class is well calibrated when, of the points it is given confidence ~0.7, about 70%
truly hold it. The reliability of a class bins the points by confidence
(:data:`N_BINS` equal bins over 0..1) and compares the mean confidence of each bin
with the share of true positives in it; the expected calibration error (ECE) is the
mean gap, weighted by the points in each bin.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from xrdmap.classes import Exclusions, apply_exclusions

N_BINS = 10
#: Temperatures searched (log-uniform bounds): sharper up to 20x, softer up to 20x.
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: Standard deviation of the Gaussian prior on log(temperature), centred on 1: a few
#: dozen validation labels that the model gets all right would otherwise drive the
#: temperature to its lower bound (measured: 0.05 on one seed of the full preset).
LOG_TEMPERATURE_PRIOR = 0.5


def reliability(truth: np.ndarray, confidence: np.ndarray, bins: int = N_BINS) -> dict:
    """Reliability of one class: per confidence bin, the points, their mean confidence
    and the share of them that truly hold the class (NaN for an empty bin)."""
    t = np.asarray(truth, dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    which = np.minimum((c * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(which, weights=c, minlength=bins) / count
        positive = np.bincount(which, weights=t, minlength=bins) / count
    return {
        "bin_edges": np.linspace(0, 1, bins + 1).round(3).tolist(),
        "count": count.tolist(),
        "mean_confidence": [None if np.isnan(v) else round(float(v), 4) for v in mean_conf],
        "fraction_positive": [None if np.isnan(v) else round(float(v), 4) for v in positive],
    }


def expected_calibration_error(
    truth: np.ndarray, confidence: np.ndarray, bins: int = N_BINS
) -> float:
    """The points-weighted mean |mean confidence - share of positives| over the bins."""
    r = reliability(truth, confidence, bins)
    n = sum(r["count"])
    if n == 0:
        return float("nan")
    gaps = [
        k * abs(m - p)
        for k, m, p in zip(r["count"], r["mean_confidence"], r["fraction_positive"], strict=True)
        if k
    ]
    return float(sum(gaps) / n)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ensemble_confidence(
    logits: np.ndarray, temperature: float, exclusions: Exclusions = ()
) -> np.ndarray:
    """(members, n, classes) logits -> (n, classes): the mean over members of the
    sigmoid of each logit divided by ``temperature``, each member's confidences passed
    through the class ``exclusions`` (:func:`xrdmap.classes.apply_exclusions`)."""
    member = _sigmoid(np.asarray(logits, dtype=np.float64) / temperature)
    return apply_exclusions(member, exclusions).mean(axis=0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, exclusions: Exclusions = ()) -> float:
    """The most probable temperature given held-out ``labels`` (n, classes; -1 =
    unknown, not counted): the binary cross-entropy of :func:`ensemble_confidence`
    summed over the known labels, plus a Gaussian prior on its logarithm
    (:data:`LOG_TEMPERATURE_PRIOR`) that holds it near 1 when the labels say little;
    1.0 when there is nothing to fit on."""
    y = np.asarray(labels, dtype=np.float64)
    known = y >= 0
    if not known.any():
        return 1.0
    eps = 1e-7

    def loss(log_t: float) -> float:
        p = np.clip(ensemble_confidence(logits, float(np.exp(log_t)), exclusions), eps, 1 - eps)
        nll = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        return float(nll[known].sum() + 0.5 * (log_t / LOG_TEMPERATURE_PRIOR) ** 2)

    lo, hi = np.log(TEMPERATURE_BOUNDS)
    found = minimize_scalar(loss, bounds=(lo, hi), method="bounded")
    return float(np.exp(found.x))
