"""1D diffraction profiles of the simulated specimens: each phase's lines (shapes from
:mod:`xrdmap.line_profiles`) with the simulated instrument and crystallite sizes, and
the air-scatter background.

All profiles are tabulated on a fine 2theta grid (degrees) and later mapped onto the
detector pixels by :mod:`xrdmap.simulate.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrdmap.config import IntensityConfig, ResolutionConfig
from xrdmap.line_profiles import (
    march_dollase,
    pseudo_voigt,
    scherrer_fwhm_deg,
    tch_pseudo_voigt_params,
)
from xrdmap.phases import ReferenceLines


@dataclass(frozen=True)
class PhaseProfiles:
    """Line profiles of one phase on the fine grid.

    ``lines`` is (n_lines, n_grid): each row a unit-area profile times the line's
    intensity; ``texture_cos2``/``texture_weight`` feed the March-Dollase weights.
    """

    name: str
    lines: np.ndarray
    fwhm_deg: np.ndarray
    texture_cos2: list[np.ndarray]
    texture_weight: list[np.ndarray]
    textured: bool

    def march_dollase(self, r: float) -> np.ndarray:
        """Per-line March-Dollase preferred-orientation factors for parameter ``r``."""
        if not self.textured:
            return np.ones(len(self.lines))
        return march_dollase(self.texture_cos2, self.texture_weight, r)


def fine_grid(tth_range_deg: tuple[float, float], step_deg: float = 0.005) -> np.ndarray:
    """A fine 2theta grid over ``tth_range_deg`` for drawing profiles."""
    lo, hi = tth_range_deg
    return np.arange(lo, hi + step_deg / 2, step_deg)


def phase_profiles(
    lines: ReferenceLines,
    grid: np.ndarray,
    *,
    size_nm: float,
    resolution: ResolutionConfig,
    wavelength_a: float,
    textured: bool,
) -> PhaseProfiles:
    """Tabulate every line of ``lines`` on ``grid`` with instrument + size broadening."""
    fwhm_g = np.array([resolution.fwhm_deg(t) for t in lines.tth_deg])
    fwhm_l = scherrer_fwhm_deg(lines.tth_deg, size_nm, wavelength_a)
    fwhm, eta = tch_pseudo_voigt_params(fwhm_g, fwhm_l)
    rows = np.stack(
        [
            inten * pseudo_voigt(grid, t, f, e)
            for t, f, e, inten in zip(lines.tth_deg, fwhm, eta, lines.intensity, strict=True)
        ]
    )
    return PhaseProfiles(
        name=lines.name,
        lines=rows,
        fwhm_deg=fwhm,
        texture_cos2=lines.texture_cos2,
        texture_weight=lines.texture_weight,
        textured=textured,
    )


def air_scatter(grid: np.ndarray, intensity: IntensityConfig) -> np.ndarray:
    """Air and Compton scatter: a smooth background falling with 2theta, counts/px."""
    return intensity.air_counts * np.exp(-(grid - grid[0]) / 15.0)
