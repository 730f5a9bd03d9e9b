"""Reference diffraction lines of the specimen phases, computed from their CIF files.

pymatgen's :class:`XRDCalculator` gives structure factors, multiplicities and the
Lorentz-polarization factor of an unpolarized source at the beamline wavelength. The
synchrotron beam is polarized and pyFAI applies (and corrects) that factor on the
detector, so the unpolarized part ``(1 + cos^2 2theta) / 2`` is divided out here: the
intensities below are structure factor x multiplicity x Lorentz, per unit volume of
phase (divided by the squared cell volume), comparable between phases.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xrdmap.config import CONF_DIR, PhaseConfig, PhasesConfig
from xrdmap.store import open_store, stored_wavelength_a, tth_axis


@dataclass(frozen=True)
class ReferenceLines:
    """Diffraction lines of one phase inside a 2theta window.

    Attributes
    ----------
    tth_deg, d_a : (n,) float
        Line positions, 2theta in degrees and d-spacing in Angstrom.
    intensity : (n,) float
        Polarization-free integrated intensity per unit phase volume (arbitrary but
        common units across phases).
    hkl : list of tuple
        Representative Miller indices of each line.
    texture_cos2 : list of (m,) float
        For each line, cos^2 of the angle between each contributing plane normal and
        the phase's texture axis (empty texture -> all ones).
    texture_weight : list of (m,) float
        Multiplicity weights matching ``texture_cos2``.
    fe_per_a3 : float
        Fe atoms per cubic Angstrom (drives the Fe fluorescence background).
    density_g_cm3 : float
        Crystal density from the structure (volume fractions -> weight fractions).
    """

    name: str
    label: str | None
    tth_deg: np.ndarray
    d_a: np.ndarray
    intensity: np.ndarray
    hkl: list[tuple[int, ...]]
    texture_cos2: list[np.ndarray]
    texture_weight: list[np.ndarray]
    fe_per_a3: float
    density_g_cm3: float

    @property
    def relative_intensity(self) -> np.ndarray:
        """Intensities scaled to 100 for the strongest line in the window."""
        return 100.0 * self.intensity / self.intensity.max()


def _load_structure(cif_path: Path):  # pymatgen is slow to import: keep it local
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Structure.from_file(str(cif_path))
        except Exception as exc:  # pymatgen raises many types on a bad CIF
            raise ValueError(f"{cif_path}: cannot read crystal structure: {exc}") from None


def compute_reference_lines(
    name: str,
    phase: PhaseConfig,
    *,
    wavelength_a: float,
    tth_range_deg: tuple[float, float],
    min_relative_intensity: float = 0.2,
    phase_dir: Path | None = None,
) -> ReferenceLines:
    """Compute the diffraction lines of ``phase`` between ``tth_range_deg``.

    Lines weaker than ``min_relative_intensity`` percent of the strongest are dropped.
    """
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    structure = _load_structure((phase_dir or CONF_DIR / "phases") / phase.cif)
    calc = XRDCalculator(wavelength=wavelength_a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pattern = calc.get_pattern(structure, scaled=False, two_theta_range=tth_range_deg)
    tth = np.asarray(pattern.x, dtype=float)
    two_theta = np.radians(tth)
    polarization = (1 + np.cos(two_theta) ** 2) / 2
    intensity = np.asarray(pattern.y, dtype=float) / polarization / structure.volume**2
    keep = intensity >= intensity.max() * min_relative_intensity / 100
    recip = structure.lattice.reciprocal_lattice
    axis = None
    if phase.texture_axis_hkl is not None:
        axis = recip.get_cartesian_coords(phase.texture_axis_hkl)
        axis = axis / np.linalg.norm(axis)
    hkls, cos2s, weights = [], [], []
    for family in (f for f, k in zip(pattern.hkls, keep, strict=True) if k):
        members = [tuple(m["hkl"]) for m in family]
        hkl3 = [(h[0], h[1], h[-1]) for h in members]  # hexagonal (h k i l) -> (h k l)
        hkls.append(members[0])
        mult = np.array([m["multiplicity"] for m in family], dtype=float)
        if axis is None:
            cos2 = np.ones(len(family))
        else:
            g = recip.get_cartesian_coords(np.array(hkl3, dtype=float))
            cos2 = (g @ axis / np.linalg.norm(g, axis=1)) ** 2
        cos2s.append(cos2)
        weights.append(mult / mult.sum())
    n_fe = sum(site.species.get_el_amt_dict().get("Fe", 0.0) for site in structure)
    return ReferenceLines(
        name=name,
        label=phase.label,
        tth_deg=tth[keep],
        d_a=np.asarray(pattern.d_hkls, dtype=float)[keep],
        intensity=intensity[keep],
        hkl=hkls,
        texture_cos2=cos2s,
        texture_weight=weights,
        fe_per_a3=n_fe / structure.volume,
        density_g_cm3=float(structure.density),
    )


def all_reference_lines(
    phases: PhasesConfig,
    *,
    wavelength_a: float,
    tth_range_deg: tuple[float, float],
    phase_dir: Path | None = None,
) -> dict[str, ReferenceLines]:
    """Reference lines of every configured phase, in configuration order."""
    return {
        name: compute_reference_lines(
            name, ph, wavelength_a=wavelength_a, tth_range_deg=tth_range_deg, phase_dir=phase_dir
        )
        for name, ph in phases.phases.items()
    }


def store_reference_lines(store: str, phases: PhasesConfig) -> dict[str, ReferenceLines]:
    """Reference lines of every phase at the wavelength and over the 2theta axis (plus
    five bins each side) of a processed store."""
    root = open_store(store)
    tth = tth_axis(root)
    margin = 5 * float(np.diff(tth).mean())
    return all_reference_lines(
        phases,
        wavelength_a=stored_wavelength_a(root),
        tth_range_deg=(float(tth[0]) - margin, float(tth[-1]) + margin),
    )
