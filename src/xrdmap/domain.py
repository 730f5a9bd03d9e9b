"""The domain of patterns a model was trained on, and patterns brought into it.

A model sees intensities bin by bin: it is only meaningful on patterns integrated onto
the same 2theta axis, at the same wavelength, with the same intensity corrections. The
model card records that domain (:func:`store_domain` at training time);
:func:`domain_differences` says what separates a store or a pattern from it; and
:func:`resample` brings patterns from another axis or wavelength onto the model's axis
through the d-spacing (Bragg's law), which is what a phase fixes.

Model bins whose d-spacing the measurement does not reach are filled with the nearest
measured intensity (a flat continuation: a level, no peak) and counted: the share of
the model's bins that the measurement covers is returned with the patterns, and a
measurement that covers less than :data:`MIN_COVERAGE` of them is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from xrdmap.errors import InputError

#: Wavelengths within this relative difference are the same (0.1%: a monochromator's
#: energy calibration).
WAVELENGTH_TOLERANCE = 1e-3
#: Axes whose bin centres agree within this share of a bin are the same axis.
AXIS_TOLERANCE_BINS = 0.1
#: Polarization factors closer than this change intensities by well under a percent.
POLARIZATION_TOLERANCE = 0.02
#: Integration settings that change a pattern's intensities (the others change speed).
PATTERN_SETTINGS = ("unit", "correct_solid_angle", "polarization_factor")
#: A measurement that covers less of the model's d-range than this is not classified.
MIN_COVERAGE = 0.5


class DomainError(InputError):
    """Patterns outside a model's domain (another axis, wavelength or correction)."""


@dataclass(frozen=True)
class PatternDomain:
    """Where a set of patterns lives: 2theta bin centres (deg), the X-ray wavelength
    (Angstrom) and the integration settings that shape intensities (``None``: unknown,
    e.g. a pattern from another instrument)."""

    tth_deg: np.ndarray
    wavelength_a: float
    integration: dict | None = None

    def describe(self) -> str:
        t = self.tth_deg
        return (
            f"2theta {t[0]:.3f}-{t[-1]:.3f} deg in {len(t)} bins at {self.wavelength_a:.5g} A "
            f"(d {self.d_range()[0]:.3f}-{self.d_range()[1]:.3f} A)"
        )

    def d_range(self) -> tuple[float, float]:
        """(smallest, largest) d-spacing of the axis, Angstrom."""
        d = d_spacing(self.tth_deg, self.wavelength_a)
        return float(d.min()), float(d.max())

    def to_record(self) -> dict:
        """A JSON record (model card, store attributes)."""
        record = {
            "tth_deg": [float(v) for v in self.tth_deg],
            "wavelength_a": float(self.wavelength_a),
        }
        if self.integration is not None:
            record["integration"] = dict(self.integration)
        return record

    @classmethod
    def from_record(cls, record: dict) -> PatternDomain:
        return cls(
            np.asarray(record["tth_deg"], dtype=np.float64),
            float(record["wavelength_a"]),
            record.get("integration"),
        )


def d_spacing(tth_deg: np.ndarray, wavelength_a: float) -> np.ndarray:
    """Bragg's law: d (Angstrom) of each 2theta (degrees)."""
    return wavelength_a / (2.0 * np.sin(np.radians(np.asarray(tth_deg, dtype=np.float64)) / 2.0))


def two_theta(d_a: np.ndarray, wavelength_a: float) -> np.ndarray:
    """2theta (degrees) of each d-spacing; NaN where the wavelength cannot reach it."""
    s = wavelength_a / (2.0 * np.asarray(d_a, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.where(s <= 1.0, 2.0 * np.degrees(np.arcsin(np.minimum(s, 1.0))), np.nan)


def domain_differences(model: PatternDomain, data: PatternDomain) -> list[str]:
    """What separates ``data`` from the ``model``'s domain, one phrase each (empty: the
    same domain within the tolerances above)."""
    out = []
    rel = abs(data.wavelength_a - model.wavelength_a) / model.wavelength_a
    if rel > WAVELENGTH_TOLERANCE:
        out.append(
            f"wavelength {data.wavelength_a:.5g} A, the model's is {model.wavelength_a:.5g} A"
        )
    a, b = model.tth_deg, data.tth_deg
    step = float(np.median(np.diff(a))) if len(a) > 1 else 1.0
    if len(a) != len(b) or np.max(np.abs(a - b)) > AXIS_TOLERANCE_BINS * step:
        out.append(
            f"2theta axis {b[0]:.3f}-{b[-1]:.3f} deg in {len(b)} bins, the model's is "
            f"{a[0]:.3f}-{a[-1]:.3f} deg in {len(a)} bins"
        )
    if model.integration is not None and data.integration is not None:
        for key in PATTERN_SETTINGS:
            m, d = model.integration.get(key), data.integration.get(key)
            if key == "polarization_factor" and m is not None and d is not None:
                same = abs(float(m) - float(d)) <= POLARIZATION_TOLERANCE
            else:
                same = m == d
            if not same:
                out.append(f"integration {key} {d}, the model's is {m}")
    return out


def _at_source(source: PatternDomain, target: PatternDomain) -> tuple[np.ndarray, np.ndarray]:
    """For each target bin: the source 2theta at its d-spacing (past the high-angle end
    where the source wavelength cannot reach it), and whether the source measured it."""
    tth = two_theta(d_spacing(target.tth_deg, target.wavelength_a), source.wavelength_a)
    lo, hi = source.tth_deg[0], source.tth_deg[-1]
    eps = 0.01 * float(np.median(np.diff(source.tth_deg)))  # rounding at the ends
    inside = np.isfinite(tth) & (tth >= lo - eps) & (tth <= hi + eps)
    return np.where(np.isfinite(tth), tth, hi), inside


def coverage(source: PatternDomain, target: PatternDomain) -> float:
    """The share of ``target``'s bins whose d-spacing ``source`` measured."""
    return float(_at_source(source, target)[1].mean())


def resample(
    patterns: np.ndarray, source: PatternDomain, target: PatternDomain
) -> tuple[np.ndarray, float]:
    """Patterns of ``source`` on ``target``'s 2theta axis, matched by d-spacing.

    Parameters
    ----------
    patterns : (n, len(source.tth_deg)) float array
        Intensities per bin (means, not sums: a bin's width does not scale them).
        NaN rows (quarantined points) stay NaN.
    source, target : PatternDomain
        The patterns' domain and the model's.

    Returns
    -------
    resampled : (n, len(target.tth_deg)) float32
        Linear interpolation in d, after a running mean over one target bin where the
        measurement is sampled more finely (a lab scan in 0.01 deg steps); target bins
        outside the measured d-range take the intensity of the nearest measured bin.
    coverage : float
        The share of target bins inside the measured d-range (:func:`coverage`).
    """
    where, inside = _at_source(source, target)
    src = source.tth_deg
    j = np.clip(np.searchsorted(src, where) - 1, 0, len(src) - 2)
    w = np.clip((where - src[j]) / (src[j + 1] - src[j]), 0.0, 1.0)  # clipped: edge values
    rows = np.asarray(patterns, dtype=np.float64)
    if inside.sum() > 1:
        per_bin = np.median(np.abs(np.gradient(where))[inside]) / np.median(np.diff(src))
        if per_bin > 1.5:
            rows = uniform_filter1d(rows, round(per_bin), axis=1, mode="nearest")
    out = (rows[:, j] * (1.0 - w) + rows[:, j + 1] * w).astype(np.float32)
    return out, float(inside.mean())


def check_coverage(coverage: float, source: PatternDomain, target: PatternDomain) -> None:
    """A :class:`DomainError` if the measurement covers too little of the model's range."""
    if coverage < MIN_COVERAGE:
        raise DomainError(
            f"the patterns ({source.describe()}) cover {coverage:.0%} of the model's range "
            f"({target.describe()}); at least {MIN_COVERAGE:.0%} is needed"
        )
