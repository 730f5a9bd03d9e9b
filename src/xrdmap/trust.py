"""When not to trust a call: the abstain rule shared by the maps, the relabel queue and
``xrdmap classify``.

A point abstains when a class's calibrated confidence is undecided (inside
:data:`UNSURE_BAND`) or when the ensemble's members disagree on a class (their
standard deviation above :data:`MEMBER_DISAGREEMENT`).
"""

from __future__ import annotations

import numpy as np

#: A class confidence inside this band is neither a yes nor a no.
UNSURE_BAND = (0.2, 0.8)
#: Members disagree when their confidences spread more than this (standard deviation).
MEMBER_DISAGREEMENT = 0.15


def undecided(confidence: np.ndarray) -> np.ndarray:
    """(n,) bool: a class confidence inside :data:`UNSURE_BAND` (NaN rows: False)."""
    c = np.asarray(confidence)
    with np.errstate(invalid="ignore"):
        return np.asarray(((c > UNSURE_BAND[0]) & (c < UNSURE_BAND[1])).any(axis=1))


def disagreeing(spread: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) bool: the members' spread exceeds :data:`MEMBER_DISAGREEMENT` on a class
    (no spread, one network: False)."""
    if spread is None:
        return np.zeros(n, bool)
    with np.errstate(invalid="ignore"):
        return np.asarray((np.asarray(spread) > MEMBER_DISAGREEMENT).any(axis=1))


def abstain_mask(confidence: np.ndarray, spread: np.ndarray | None) -> np.ndarray:
    """(n,) bool: the points whose call should not be trusted."""
    return undecided(confidence) | disagreeing(spread, len(confidence))
