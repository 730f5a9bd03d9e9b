"""The phase fit of a simulated beamtime's store scored against its ground truth.

- Fractions: the fit's weight fractions among the quantified (powder) phases against
  the truth's volume fractions turned into the same weight fractions (CIF densities),
  mean absolute error per phase over the points with rust (rust phases at least
  :data:`MIN_RUST_VOLUME` of the beam).
- Unknown phases: a point is flagged when the fit finds an unexplained line; recall
  over the points where the truth sees a phase no model knows (``unknown phase``),
  false flags over the others.
- Cross-section (:mod:`xrdmap.cross_section`): the truth's layers come from its zones
  (steel, inner and outer rust at the beam centre) through the same per-column rule,
  so both are read on the same scan grid; the truth's porosity and alpha/gamma* from
  its volume fractions (x CIF densities) over its rust rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xrdmap.cross_section import (
    ALPHA,
    BETA,
    GAMMA,
    MAGNETITE,
    SampleLayers,
    alpha_gamma_star,
    column_layers,
    sample_layers,
)
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


@dataclass(frozen=True)
class LayerScores:
    sample: str
    step_um: float
    thickness_error_um: np.ndarray  #: per column where both find the rust
    inner_error_um: np.ndarray
    porosity: tuple[float, float]  #: (found, truth)
    alpha_gamma_star: tuple[float, float]  #: (found, truth)
    found: SampleLayers


def score_layers(store: str, truth_dir: str | Path, sample: str) -> LayerScores:
    found = sample_layers(store, sample)
    fit = read_phase_fit(open_store(store), sample)
    names = list(fit.attrs["phases"])
    density = dict(zip(names, fit.attrs["density_g_cm3"], strict=True))
    truth = pd.read_csv(Path(truth_dir) / f"{sample}.csv", keep_default_na=False)
    shape = (int(truth["row"].max()) + 1, int(truth["col"].max()) + 1)

    def grid(values) -> np.ndarray:
        out = np.zeros(shape, dtype=np.asarray(values).dtype)
        out[truth["row"].to_numpy(), truth["col"].to_numpy()] = values
        return out

    zone = truth["zone"].to_numpy()
    rust = grid(np.isin(zone, ("inner rust", "outer rust")))
    steel = grid(zone == "steel")
    inner_zone = grid(zone == "inner rust")
    layers = column_layers(rust, steel, np.full((*shape, 1), np.nan))
    ok = (layers.top >= 0) & (layers.interface > layers.top)
    step = found.step_um
    thickness = np.where(ok, (layers.interface - layers.top) * step, np.nan)
    r = np.arange(shape[0])[:, None]
    in_rust = ok[None, :] & (r >= layers.top[None, :]) & (r < layers.interface[None, :])
    inner = np.where(ok, (inner_zone & in_rust).sum(axis=0) * step, np.nan)
    inner[~np.isfinite(found.inner_um)] = np.nan
    mass = {
        n: grid(truth[f"frac_{n}"].to_numpy() * density[n])[in_rust]
        for n in (ALPHA, GAMMA, BETA, MAGNETITE)
        if f"frac_{n}" in truth and n in density
    }
    porosity = (
        float(grid(truth["frac_resin"].to_numpy())[in_rust].mean()) if in_rust.any() else np.nan
    )
    return LayerScores(
        sample=sample,
        step_um=step,
        thickness_error_um=(found.thickness_um - thickness)[np.isfinite(found.thickness_um)],
        inner_error_um=(found.inner_um - inner)[np.isfinite(found.inner_um) & np.isfinite(inner)],
        porosity=(found.porosity, porosity),
        alpha_gamma_star=(found.alpha_gamma_star, alpha_gamma_star(mass)),
        found=found,
    )
