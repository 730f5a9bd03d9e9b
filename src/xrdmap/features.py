"""What the classifier sees of a pattern, and physics-plausible variations of it.

Features, two blocks of all 300 bins over the detector's 2theta range:

1. ``log1p`` of the integrated intensity (counts per pixel, solid angle and
   polarization corrected), divided by :data:`LOG_SCALE`. The log keeps the absolute
   level, which carries physics (Fe fluorescence lifts every bin where iron is: steel
   without reflections is not resin), and compresses the huge range of coarse-grain
   reflections (a single ferrite grain can reach 100x the background);
2. the same minus its smooth lower envelope (a running minimum then a running mean,
   :data:`ENVELOPE_BINS` bins each), times :data:`PEAK_GAIN`: the peaks on a flat
   zero, whatever the background under them.

Quarantined points (NaN patterns) are not classified.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

#: log1p of a few thousand counts is ~8: bring features to order one.
LOG_SCALE = 5.0
#: Width of the lower envelope, in bins (~2.5 deg: wider than rust peaks, narrower
#: than the resin halo).
ENVELOPE_BINS = 25
#: Weight of the peak block against the level block.
PEAK_GAIN = 3.0


def log_features(patterns: np.ndarray) -> np.ndarray:
    """(n, nbins) patterns -> (n, nbins) float32 log levels; NaN rows give NaN rows."""
    out = np.maximum(np.asarray(patterns, dtype=np.float32), np.float32(0))  # NaN stays
    np.log1p(out, out=out)
    out /= np.float32(LOG_SCALE)
    return out


def lower_envelope(rows: np.ndarray, width: int = ENVELOPE_BINS) -> np.ndarray:
    """Smooth lower envelope of each row: a running minimum, then a running mean
    (``width`` bins each). Narrow peaks vanish; broad humps and levels stay."""
    nan = np.isnan(rows)
    if nan.any():
        rows = np.where(nan, 0, rows)
    envelope = minimum_filter1d(rows, width, axis=1, mode="nearest")
    return uniform_filter1d(envelope, width, axis=1, mode="nearest")


def with_peaks(levels: np.ndarray) -> np.ndarray:
    """(n, nbins) log levels -> (n, 2 nbins): the levels, then the peaks above their
    smooth lower envelope."""
    n, nbins = levels.shape
    out = np.empty((n, 2 * nbins), np.float32)
    out[:, :nbins] = levels
    peaks = out[:, nbins:]
    np.subtract(levels, lower_envelope(levels), out=peaks)
    peaks *= np.float32(PEAK_GAIN)
    return out


def pattern_features(patterns: np.ndarray) -> np.ndarray:
    """(n, nbins) patterns -> (n, 2 nbins) float32 features; NaN rows give NaN rows."""
    return with_peaks(log_features(patterns))


def noise_level(rows: np.ndarray) -> np.ndarray:
    """(n,) robust standard deviation of each row's point-to-point noise (from the
    median absolute difference of neighbours: peaks barely move it)."""
    diffs = np.abs(np.diff(np.asarray(rows, dtype=np.float64), axis=1))
    return 1.4826 * np.median(diffs, axis=1) / np.sqrt(2)


def peak_heights(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) height of each row's strongest peak above its lower envelope, and the
    (n, nbins) envelope: how :func:`intensity_reference` measures a pattern's scale."""
    rows = np.asarray(rows, dtype=np.float64)
    envelope = lower_envelope(rows)
    return (rows - envelope).max(axis=1), envelope


def intensity_reference(patterns: np.ndarray, *, min_significance: float = 6.0) -> dict:
    """The typical scale of training patterns (for the model card): the median height of
    the strongest peak above the lower envelope among patterns that have one (higher
    than ``min_significance`` noise levels), and the median envelope level."""
    rows = np.asarray(patterns, dtype=np.float64)
    rows = rows[~np.isnan(rows).any(axis=1)]
    height, envelope = peak_heights(rows)
    peaked = height > min_significance * np.maximum(noise_level(rows), 1e-12)
    return {
        "peak_height_median": float(np.median(height[peaked] if peaked.any() else height)),
        "background_median": float(np.median(envelope)),
    }


def augment(
    features: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    copies: int,
    gain_sigma: float = 0.25,
    max_shift_bins: int = 1,
    noise_sigma: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """The labeled log levels (:func:`log_features`) plus ``copies`` varied copies of each.

    Variations an expert would label the same: overall intensity (beam current, sample
    thickness: a gain, i.e. an offset in log space), a shift of up to ``max_shift_bins``
    bins (lattice strain, sample height), and counting noise.
    """
    if copies <= 0:
        return features, labels
    reps = np.repeat(features, copies, axis=0)
    n = reps.shape[0]
    gain = rng.normal(0.0, gain_sigma, size=(n, 1)) / LOG_SCALE  # log of a gain ~ offset
    shifts = rng.integers(-max_shift_bins, max_shift_bins + 1, size=n)
    out = np.empty_like(reps)
    for s in np.unique(shifts):
        rows = shifts == s
        shifted = np.roll(reps[rows], s, axis=1)
        if s > 0:
            shifted[:, :s] = reps[rows][:, :1]
        elif s < 0:
            shifted[:, s:] = reps[rows][:, -1:]
        out[rows] = shifted
    out += gain + rng.normal(0.0, noise_sigma, size=out.shape).astype(np.float32)
    return (
        np.concatenate([features, out]).astype(np.float32),
        np.concatenate([labels, np.repeat(labels, copies, axis=0)]),
    )
