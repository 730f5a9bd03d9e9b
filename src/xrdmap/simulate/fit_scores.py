"""The phase fit of a simulated beamtime's store scored against its ground truth.

- Fractions: the fit's weight fractions among the quantified (powder) phases against
  the truth's volume fractions turned into the same weight fractions (CIF densities),
  mean absolute error per phase over the points with rust (rust phases at least
  :data:`MIN_RUST_VOLUME` of the beam).
- Unknown phases: a point is flagged when the fit finds an unexplained line; recall
  over the points where the truth sees a phase no model knows (``unknown phase``),
  false flags over the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xrdmap.store import open_store, read_phase_fit, samples

RUST_PHASES = ("magnetite", "goethite", "lepidocrocite")
#: Points with rust: the rust phases fill at least this share of the beam volume.
MIN_RUST_VOLUME = 0.1


@dataclass(frozen=True)
class SampleScores:
    sample: str
    n_rust: int
    mae: dict[str, float]  #: per quantified phase, over the rust points
    n_unknown: int  #: points where the truth sees a foreign phase
    n_found: int  #: of those, flagged by the fit
    n_other: int  #: points without a foreign phase seen
    n_false: int  #: of those, flagged


def truth_weight_fractions(truth: pd.DataFrame, names: list[str], density: np.ndarray):
    """(n, len(names)) weight fractions among ``names`` from the truth's volume
    fractions (NaN where none of them is there)."""
    mass = truth[[f"frac_{n}" for n in names]].to_numpy() * density
    total = mass.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, mass / total, np.nan)


def score_sample(store: str, truth_dir: str | Path, sample: str) -> SampleScores:
    fit = read_phase_fit(open_store(store), sample)
    names = list(fit.attrs["phases"])
    quantified = np.array(fit.attrs["quantified"])
    q_names = [n for n, q in zip(names, quantified, strict=True) if q]
    density = np.array(fit.attrs["density_g_cm3"])[quantified]
    truth = pd.read_csv(Path(truth_dir) / f"{sample}.csv", keep_default_na=False)
    expected = truth_weight_fractions(truth, q_names, density)
    found = fit["weight_fraction"][:][:, quantified]
    rust = truth[[f"frac_{n}" for n in RUST_PHASES]].sum(axis=1).to_numpy() >= MIN_RUST_VOLUME
    err = np.abs(found[rust] - expected[rust])
    mae = {n: float(np.nanmean(err[:, k])) if rust.any() else np.nan for k, n in enumerate(q_names)}
    flagged = fit["unexplained"][:] > 0
    valid = np.isfinite(fit["unexplained"][:])
    unknown = truth["unknown phase"].astype(str).to_numpy() != ""
    return SampleScores(
        sample=sample,
        n_rust=int(rust.sum()),
        mae=mae,
        n_unknown=int((unknown & valid).sum()),
        n_found=int((unknown & flagged).sum()),
        n_other=int((~unknown & valid).sum()),
        n_false=int((~unknown & flagged).sum()),
    )


def score_store(store: str, truth_dir: str | Path) -> list[SampleScores]:
    """Scores of every sample of ``store``."""
    return [score_sample(store, truth_dir, s) for s in samples(open_store(store))]
