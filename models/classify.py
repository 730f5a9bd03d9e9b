"""Classify one measured 1D pattern (a lab diffractometer, another beamline) with a
model version: brought into the model's domain, scaled, scored, and checked for peaks
that no known phase explains."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.predict import ensemble_output
from models.registry import load_model, read_card
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig
from xrdmap.domain import PatternDomain, check_coverage, resample
from xrdmap.errors import InputError, RegistryError
from xrdmap.features import pattern_features, peak_heights
from xrdmap.pattern_files import read_pattern
from xrdmap.peaks import Peak, find_pattern_peaks
from xrdmap.phases import all_reference_lines
from xrdmap.trust import MEMBER_DISAGREEMENT, UNSURE_BAND


@dataclass
class Classification:
    """What the model says about one measured pattern, and whether to trust it."""

    file: str
    wavelength_a: float
    version: str
    coverage: float
    scale: float
    confidences: dict[str, float]
    spread: dict[str, float]
    peaks: list[Peak]
    abstain: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Peak]:
        return [p for p in self.peaks if not p.phases]

    def record(self) -> dict:
        return {
            "file": self.file,
            "wavelength_a": self.wavelength_a,
            "model": self.version,
            "coverage": round(self.coverage, 4),
            "intensity_scale": self.scale,
            "confidences": {k: round(v, 4) for k, v in self.confidences.items()},
            "spread": {k: round(v, 4) for k, v in self.spread.items()},
            "calibrated": bool(self.spread),
            "peaks": [p.record() for p in self.peaks],
            "unexplained_peaks": [p.record() for p in self.unexplained],
            "abstain": bool(self.abstain),
            "abstain_reasons": self.abstain,
        }


def abstain_reasons(
    confidences: dict[str, float],
    spread: dict[str, float],
    unexplained: list[Peak],
    coverage: float,
) -> list[str]:
    """Why a call should not be trusted (empty: no reason found): the rule of
    :mod:`xrdmap.trust`, plus peaks no known phase explains and a partial range."""
    lo, hi = UNSURE_BAND
    out = [f"{name} undecided ({c:.2f})" for name, c in confidences.items() if lo < c < hi]
    out += [
        f"members disagree on {name} (spread {v:.2f})"
        for name, v in spread.items()
        if v > MEMBER_DISAGREEMENT
    ]
    if unexplained:
        shown = ", ".join(f"{p.tth_deg:.2f} deg (d {p.d_a:.3f} A)" for p in unexplained[:3])
        out.append(f"{len(unexplained)} peak(s) no known phase explains: {shown}")
    if coverage < 0.9:
        out.append(f"the pattern covers {coverage:.0%} of the model's d-range")
    return out


def classify_pattern(
    path: str | Path,
    wavelength_a: float,
    registry: str,
    phases: PhasesConfig,
    version: str | None = None,
) -> Classification:
    """Classify the pattern in ``path`` (2theta in degrees at ``wavelength_a``).

    The pattern is resampled onto the model's axis through d-spacing
    (:func:`xrdmap.domain.resample`), then scaled so that its strongest peak above the
    background matches the median of the model's training patterns (its background
    level when it has no significant peak): a lab pattern's counts mean nothing to a
    network trained on one beamline's. Peaks in the model's d-range are matched with the
    known phases' reference lines at this wavelength.
    """
    if not 0.05 <= wavelength_a <= 5.0:
        raise InputError(f"--wavelength {wavelength_a}: expected Angstrom, 0.05-5")
    card = read_card(registry, version)
    if "domain" not in card or "intensity" not in card:
        raise RegistryError(
            f"model {card['version']} records no domain (trained by an older xrdmap): "
            "retrain it to classify patterns from other instruments"
        )
    tth, intensity = read_pattern(path)
    source = PatternDomain(tth, wavelength_a)
    target = PatternDomain.from_record(card["domain"])
    on_axis, coverage = resample(intensity[None, :], source, target)
    check_coverage(coverage, source, target)
    lines = all_reference_lines(
        phases, wavelength_a=wavelength_a, tth_range_deg=(float(tth[0]), float(tth[-1]))
    )
    d_lo, d_hi = target.d_range()
    peaks = [
        p for p in find_pattern_peaks(tth, intensity, wavelength_a, lines) if d_lo <= p.d_a <= d_hi
    ]
    reference = card["intensity"]
    height, envelope = peak_heights(on_axis)
    if peaks:
        scale = reference["peak_height_median"] / float(height[0])
    else:
        scale = reference["background_median"] / max(float(np.median(envelope)), 1e-12)
    model = load_model(registry, card["version"])
    found = model.predict(pattern_features(on_axis * scale), verbose=0)
    values, spread = ensemble_output(found, np.array([True]), len(CLASS_NAMES))
    confidences = {name: float(c) for name, c in zip(CLASS_NAMES, values[0], strict=True)}
    spreads = {} if spread is None else dict(zip(CLASS_NAMES, spread[0].tolist(), strict=True))
    result = Classification(
        file=str(path),
        wavelength_a=wavelength_a,
        version=card["version"],
        coverage=coverage,
        scale=float(scale),
        confidences=confidences,
        spread=spreads,
        peaks=peaks,
    )
    result.abstain = abstain_reasons(confidences, spreads, result.unexplained, coverage)
    return result
