"""Diffraction line shapes shared by the simulator and the phase fit.

Pseudo-Voigt lines (Thompson-Cox-Hastings mixing of a Gaussian instrument width and a
Lorentzian Scherrer size width) and the amorphous halo of the mounting epoxy, as
functions of 2theta in degrees.
"""

from __future__ import annotations

import numpy as np

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


def pseudo_voigt(x: np.ndarray, center, fwhm, eta) -> np.ndarray:
    """Unit-area pseudo-Voigt profile (broadcasts over its arguments)."""
    dx = x - center
    hw = fwhm / 2
    gauss = np.sqrt(np.log(2) / np.pi) / hw * np.exp(-np.log(2) * (dx / hw) ** 2)
    lorentz = 1 / (np.pi * hw * (1 + (dx / hw) ** 2))
    return eta * lorentz + (1 - eta) * gauss


def epoxy_halo(tth_deg: np.ndarray, wavelength_a: float) -> np.ndarray:
    """The amorphous halo of cured epoxy, peak height 1, as a function of 2theta (deg)."""
    s = 2 * np.sin(np.radians(tth_deg) / 2) / wavelength_a  # 1/d, 1/Angstrom
    out = np.zeros_like(tth_deg, dtype=float)
    for d, width, weight in EPOXY_HALOS:
        sigma = width / 2.3548
        out += weight * np.exp(-0.5 * ((s - 1 / d) / sigma) ** 2)
    # peak height 1 over all 2theta (where 1/d = 1/4.7 A), whatever part the axis holds
    s_peak = 1 / EPOXY_HALOS[0][0]
    top = sum(
        weight * np.exp(-0.5 * ((s_peak - 1 / d) / (width / 2.3548)) ** 2)
        for d, width, weight in EPOXY_HALOS
    )
    return out / top


def march_dollase(cos2: list[np.ndarray], weights: list[np.ndarray], r: float) -> np.ndarray:
    """Per-line March-Dollase preferred-orientation factors for parameter ``r``.

    ``cos2[i]``: cos^2 of the angle between each plane normal of line ``i`` and the
    texture axis; ``weights[i]``: their multiplicity shares. ``r = 1``: no texture.
    """
    if r == 1.0:
        return np.ones(len(cos2))
    return np.array(
        [np.sum(w * (r * r * c + (1 - c) / r) ** -1.5) for c, w in zip(cos2, weights, strict=True)]
    )
