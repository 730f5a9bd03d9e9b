"""The phase fit (:mod:`xrdmap.phase_fit`) of a store's samples: stored per point, read
back, summarized for people (the unexplained lines of a sample) and drawn as maps.

Stored per sample under ``samples/<sample>/phase_fit/<published>/`` (see
:mod:`xrdmap.store`): ``weight_fraction``, ``volume_fraction`` and ``scale`` (n, phases)
with their ``*_sigma``, ``reduced_chi2``, ``unexplained`` (sigma of the strongest
unexplained residual peak, 0 when none), ``unexplained_tth``, ``halo`` (the epoxy halo's
height) and ``background`` (the smooth background's mean) (n,); the attributes
name the phases, which are quantified, their densities, the refined line shapes and
the fit's settings.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from xrdmap import __version__, phase_fit
from xrdmap.config import PhasesConfig
from xrdmap.domain import d_spacing
from xrdmap.outputs import written_whole
from xrdmap.phases import store_reference_lines
from xrdmap.store import (
    map_extent,
    on_grid,
    open_store,
    read_phase_fit,
    sample_group,
    stored_wavelength_a,
    tth_axis,
    write_phase_fit,
)

#: Unexplained peaks of a sample closer than this (deg 2theta) are one line.
LINE_GROUPING_DEG = 0.15


@dataclass(frozen=True)
class UnexplainedLine:
    """A line no known phase explains, seen at ``n_points`` points of a sample."""

    tth_deg: float
    d_a: float
    n_points: int


@dataclass(frozen=True)
class SampleFit:
    sample: str
    n_points: int
    n_unexplained: int
    lines: list[UnexplainedLine]
    seconds: float


def fit_settings() -> dict:
    """The constants a fit depends on (stored with it)."""
    return {
        "texture_variants": list(phase_fit.TEXTURE_VARIANTS),
        "background_knot_deg": phase_fit.BACKGROUND_KNOT_DEG,
        "model_error": phase_fit.MODEL_ERROR,
        "model_error_coarse": phase_fit.MODEL_ERROR_COARSE,
        "unexplained_sigmas": phase_fit.UNEXPLAINED_SIGMAS,
        "oversample": phase_fit.OVERSAMPLE,
    }


def unexplained_lines(tth_deg: np.ndarray, wavelength_a: float) -> list[UnexplainedLine]:
    """Group the points' unexplained peak positions (NaN: none) into lines, most
    frequent first."""
    at = np.sort(tth_deg[np.isfinite(tth_deg)])
    if at.size == 0:
        return []
    groups = np.split(at, np.flatnonzero(np.diff(at) > LINE_GROUPING_DEG) + 1)
    lines = [
        UnexplainedLine(
            tth_deg=float(np.median(g)),
            d_a=float(d_spacing(np.median(g), wavelength_a)),
            n_points=int(g.size),
        )
        for g in groups
    ]
    return sorted(lines, key=lambda line: -line.n_points)


def fit_sample(store: str, sample: str, phases: PhasesConfig) -> SampleFit:
    """Fit every point of ``sample`` and publish the result in the store."""
    t0 = time.perf_counter()
    root = open_store(store)
    group = sample_group(root, sample)
    tth = tth_axis(root)
    wavelength = stored_wavelength_a(root)
    patterns = group["patterns"][:].astype(np.float64)
    sigma = group["sigma"][:].astype(np.float64)
    known = phase_fit.known_phases(phases, store_reference_lines(store, phases))
    shape = phase_fit.map_line_shape(tth, wavelength, known, patterns, sigma)
    basis = phase_fit.build_basis(tth, wavelength, known, shape)
    fits = phase_fit.fit_points(basis, patterns, sigma)
    arrays = {
        field.name: np.asarray(getattr(fits, field.name), dtype=np.float32)
        for field in dataclasses.fields(fits)
    }
    attrs = {
        "phases": [p.name for p in known],
        "labels": [p.label for p in known],
        "quantified": [not p.coarse for p in known],
        "density_g_cm3": [p.density_g_cm3 for p in known],
        "line_shape": shape.to_record(),
        "settings": fit_settings(),
        "wavelength_a": wavelength,
        "software": f"xrdmap {__version__}",
        "created": datetime.now(UTC).isoformat(),
    }
    write_phase_fit(store, sample, arrays, attrs)
    return SampleFit(
        sample=sample,
        n_points=int(np.isfinite(fits.unexplained).sum()),
        n_unexplained=int((fits.unexplained > 0).sum()),
        lines=unexplained_lines(fits.unexplained_tth, wavelength),
        seconds=time.perf_counter() - t0,
    )


def write_fraction_maps(store: str, sample: str, out_dir: Path) -> Path:
    """``<sample>_fractions.png``: the weight fraction of each quantified phase present
    in the sample, and the unexplained intensity."""
    root = open_store(store)
    fit = read_phase_fit(root, sample)
    names = list(fit.attrs["phases"])
    quantified = list(fit.attrs["quantified"])
    weight = fit["weight_fraction"][:]
    shown = [
        k for k, q in enumerate(quantified) if q and np.nanmax(weight[:, k], initial=0) >= 0.05
    ]
    extent = map_extent(root, sample)
    width, height = extent[1] - extent[0], extent[2] - extent[3]
    panel_h = 3.2
    panel_w = max(1.6, panel_h * width / height) + 1.2
    n_panels = len(shown) + 1
    fig = Figure(figsize=(panel_w * n_panels, panel_h + 1.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_panels))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    for ax, k in zip(axes, shown, strict=False):
        image = ax.imshow(
            on_grid(root, sample, weight[:, k]),
            cmap=cmap,
            vmin=0,
            vmax=1,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_title(f"{names[k]} ({fit.attrs['labels'][k]})", fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8, label="weight fraction")
    unexplained = fit["unexplained"][:]
    ax = axes[-1]
    image = ax.imshow(
        on_grid(root, sample, unexplained),
        cmap="magma",
        vmin=0,
        vmax=max(float(np.nanmax(unexplained, initial=0)), 2 * phase_fit.UNEXPLAINED_SIGMAS),
        extent=extent,
        interpolation="nearest",
    )
    flagged = int(np.sum(unexplained > 0))
    ax.set_title(f"unexplained line ({flagged} points)", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="sigma above the fit")
    for i, ax in enumerate(axes):
        ax.set_xlabel("x (um)")
        if i == 0:
            ax.set_ylabel("y (um, towards the steel)")
    fig.suptitle(
        f"{sample}: weight fractions among the powder phases (grey: none measurably there; "
        "coarse-grained Fe phases are seen, not quantified)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{sample}_fractions.png"
    with written_whole(path) as part:
        fig.savefig(part, dpi=110)
    return path
