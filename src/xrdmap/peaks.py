"""Peaks of a measured pattern and the known phases' lines that explain them.

A peak is a local maximum standing more than :data:`MIN_SIGNIFICANCE` noise levels
above the pattern's background, its running median over :data:`BACKGROUND_DEG`
(wider than a peak, so peaks do not lift it; a running minimum would sit a few noise
levels low and turn noise into peaks). The noise
level comes from the pattern itself (the spread of its point-to-point differences), so
it holds whatever the intensity scale. A peak is explained by a phase when one of the
phase's reference lines (from its CIF, at the pattern's wavelength) lies within
:data:`D_TOLERANCE` of the peak's d-spacing: lattice parameters of real phases differ
from the reference by up to about a percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import find_peaks

from xrdmap.domain import d_spacing
from xrdmap.features import noise_level
from xrdmap.phases import ReferenceLines

#: Peaks smaller than this many noise levels are not reported.
MIN_SIGNIFICANCE = 6.0  # the same cut as features.intensity_reference's
#: Relative d-spacing tolerance of a line match.
D_TOLERANCE = 0.015
#: Width of the running median that is the background, degrees 2theta.
BACKGROUND_DEG = 3.0
#: Lines weaker than this share of their phase's strongest line explain nothing.
MIN_LINE_SHARE = 0.02


@dataclass(frozen=True)
class Peak:
    """One peak: where, how strong, and the known phases with a line there."""

    tth_deg: float
    d_a: float
    height: float
    significance: float
    phases: tuple[str, ...]

    def record(self) -> dict:
        return {
            "tth_deg": round(self.tth_deg, 4),
            "d_a": round(self.d_a, 4),
            "height": float(self.height),
            "significance": round(self.significance, 1),
            "phases": list(self.phases),
        }


def find_pattern_peaks(
    tth_deg: np.ndarray,
    intensity: np.ndarray,
    wavelength_a: float,
    lines: dict[str, ReferenceLines],
    *,
    min_significance: float = MIN_SIGNIFICANCE,
) -> list[Peak]:
    """The significant peaks of one pattern, each with the phases of ``lines`` that
    have a line at its d-spacing (none: an unexplained peak), strongest first."""
    step = float(np.median(np.diff(tth_deg)))
    width = max(3, round(BACKGROUND_DEG / step) | 1)
    row = np.asarray(intensity, dtype=np.float64)
    residual = row - median_filter(row, width, mode="nearest")
    noise = float(noise_level(row[None, :])[0]) or float(np.std(row)) or 1.0
    threshold = min_significance * noise
    found, props = find_peaks(residual, height=threshold, prominence=threshold)
    d = d_spacing(tth_deg[found], wavelength_a)
    line_d = {
        name: ref.d_a[ref.intensity >= MIN_LINE_SHARE * ref.intensity.max()]
        for name, ref in lines.items()
        if len(ref.d_a)
    }
    peaks = []
    for i, index in enumerate(found):
        phases = tuple(
            name for name, ds in line_d.items() if np.any(np.abs(ds - d[i]) <= D_TOLERANCE * d[i])
        )
        height = float(props["peak_heights"][i])
        peaks.append(Peak(float(tth_deg[index]), float(d[i]), height, height / noise, phases))
    return sorted(peaks, key=lambda p: -p.height)
