"""1D diffraction profiles: pseudo-Voigt lines with instrument and crystallite-size
broadening, the epoxy amorphous halo and the air-scatter background.

All profiles are tabulated on a fine 2theta grid (degrees) and later mapped onto the
detector pixels by :mod:`xrdmap.simulate.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrdmap.config import IntensityConfig, ResolutionConfig
from xrdmap.phases import ReferenceLines

SCHERRER_K = 0.9

#: Epoxy amorphous halos: (d in Angstrom, FWHM in 1/d units of 1/Angstrom, weight).
EPOXY_HALOS: tuple[tuple[float, float, float], ...] = ((4.7, 0.09, 1.0), (2.15, 0.08, 0.18))


def scherrer_fwhm_deg(tth_deg: np.ndarray | float, size_nm: float, wavelength_a: float):
    """Lorentzian FWHM (deg 2theta) of crystallite-size broadening, Scherrer equation."""
    theta = np.radians(np.asarray(tth_deg)) / 2
    beta = SCHERRER_K * wavelength_a / (size_nm * 10.0 * np.cos(theta))
    return np.degrees(beta)


def tch_pseudo_voigt_params(fwhm_g: np.ndarray, fwhm_l: np.ndarray):
    """Thompson-Cox-Hastings: total FWHM and Lorentzian mixing of a Voigt profile."""
    g, lo = np.asarray(fwhm_g, float), np.asarray(fwhm_l, float)
    fwhm = (
        g**5
        + 2.69269 * g**4 * lo
        + 2.42843 * g**3 * lo**2
        + 4.47163 * g**2 * lo**3
        + 0.07842 * g * lo**4
        + lo**5
    ) ** 0.2
    r = lo / fwhm
    eta = 1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3
    return fwhm, eta


def pseudo_voigt(x: np.ndarray, center: float, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt profile."""
    dx = x - center
    hw = fwhm / 2
    gauss = np.sqrt(np.log(2) / np.pi) / hw * np.exp(-np.log(2) * (dx / hw) ** 2)
    lorentz = 1 / (np.pi * hw * (1 + (dx / hw) ** 2))
    return eta * lorentz + (1 - eta) * gauss


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
        if not self.textured or r == 1.0:
            return np.ones(len(self.lines))
        out = np.empty(len(self.lines))
        for i, (cos2, w) in enumerate(zip(self.texture_cos2, self.texture_weight, strict=True)):
            out[i] = np.sum(w * (r * r * cos2 + (1 - cos2) / r) ** -1.5)
        return out


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


def epoxy_halo(grid: np.ndarray, wavelength_a: float) -> np.ndarray:
    """The amorphous halo of cured epoxy, peak height 1, as a function of 2theta (deg)."""
    s = 2 * np.sin(np.radians(grid) / 2) / wavelength_a  # 1/d, 1/Angstrom
    out = np.zeros_like(grid)
    for d, width, weight in EPOXY_HALOS:
        sigma = width / 2.3548
        out += weight * np.exp(-0.5 * ((s - 1 / d) / sigma) ** 2)
    return out / out.max()


def air_scatter(grid: np.ndarray, intensity: IntensityConfig) -> np.ndarray:
    """Air and Compton scatter: a smooth background falling with 2theta, counts/px."""
    return intensity.air_counts * np.exp(-(grid - grid[0]) / 15.0)
