"""How unsure a model is of a point, from its per-class confidences.

Scores, from (n, classes) confidences in 0..1, each in 0..1 with 1 = most unsure:

- ``least_confidence``: the worst class, ``1 - min_k |2 c_k - 1|`` (1 when any class
  sits at 0.5);
- ``margin``: the mean over classes of ``1 - |2 c_k - 1|``;
- ``entropy``: the mean binary entropy over classes, in bits.
"""

from __future__ import annotations

import numpy as np

from xrdmap.trust import undecided

SCORES = ("least_confidence", "margin", "entropy")
DEFAULT_SCORE = "least_confidence"


def uncertainty(confidence: np.ndarray, method: str = "least_confidence") -> np.ndarray:
    """(n,) uncertainty of each row of confidences; NaN rows (no pattern) score -inf."""
    c = np.asarray(confidence, dtype=np.float64)
    sure = np.abs(2 * c - 1)
    if method == "least_confidence":
        score = 1 - sure.min(axis=1)
    elif method == "margin":
        score = 1 - sure.mean(axis=1)
    elif method == "entropy":
        p = np.clip(c, 1e-12, 1 - 1e-12)
        score = (-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).mean(axis=1)
    else:
        raise ValueError(f"unknown uncertainty score {method!r}; choose from {SCORES}")
    return np.where(np.isnan(score), -np.inf, score)


def unsure_fraction(confidence: np.ndarray) -> float:
    """Share of rows (points with a pattern) with a class undecided
    (:func:`xrdmap.trust.undecided`)."""
    c = np.asarray(confidence)
    ok = ~np.isnan(c).any(axis=1)
    return float(undecided(c[ok]).sum()) / max(int(ok.sum()), 1)
