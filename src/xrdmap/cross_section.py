"""The numbers a corrosion study reads from a mapped cross-section, from the phase fit.

Each point is rust, steel or neither (resin, a pore):

- rust: the Fe oxides and oxyhydroxides (classes Fe3O4, alpha-FeOOH, gamma-FeOOH,
  Other) together stand :data:`RUST_SIGMAS` above zero in the fit, and the epoxy halo
  is below half its height in the resin (the beam centre is in the rust);
- steel: the Fe fluorescence (the smooth background) is above halfway between its
  level in the rust (median) and in the steel (the map's :data:`STEEL_PERCENTILE` th
  percentile): steel without a reflection still fluoresces. Without that contrast
  (:data:`FLUORESCENCE_CONTRAST`; a detector threshold above Fe K), a ferrite or
  austenite line standing :data:`RUST_SIGMAS` above zero.

The section's surface runs along x; steel lies below (larger y) or above, whichever
side the steel points are. Per map column: the steel/rust interface is the first row
(from the rust side) from which at least :data:`STEEL_SHARE` of the rows are steel; the
rust surface is the first rust row (coming from the resin) with rust in at least two of
the next three rows, unless it lies more than :data:`CRACK_ROWS` below the median of
its neighbours (:data:`NEIGHBOURS` columns each side): a resin-filled crack running
down from the surface, where the neighbours' surface is taken; the thickness is the
distance between them. The inner/outer
boundary is the row that splits the column's rust composition into two most different
parts (least squares, :data:`MIN_SPLIT_GAIN`). Porosity is the mean resin share of the
beam over the rust rows (the epoxy halo's height over its height in the resin above).

The protective ability index of weathering-steel studies is
alpha/gamma* = alpha-FeOOH / (gamma-FeOOH + beta-FeOOH + Fe3O4) by mass, summed over
the rust (mass ~ fitted scale x density), with its spread over map columns
(bootstrap); alpha/gamma = alpha-FeOOH / gamma-FeOOH beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import zarr

from xrdmap.store import on_grid, open_store, read_phase_fit, sample_group

RUST_LABELS = ("Fe3O4", "alpha-FeOOH", "gamma-FeOOH", "Other")
STEEL_PHASES = ("ferrite", "austenite")
RUST_SIGMAS = 5.0
STEEL_PERCENTILE = 95
FLUORESCENCE_CONTRAST = 2.0
STEEL_SHARE = 0.8
CRACK_ROWS = 2
NEIGHBOURS = 2
MIN_SPLIT_GAIN = 0.3
BOOTSTRAP = 200
#: The index's phases (phases.yaml names).
ALPHA, GAMMA, BETA, MAGNETITE = "goethite", "lepidocrocite", "akaganeite", "magnetite"


@dataclass(frozen=True)
class ColumnLayers:
    """Row indices per map column (-1: not found), rows counted from the resin side."""

    top: np.ndarray
    interface: np.ndarray
    split: np.ndarray


def column_layers(rust: np.ndarray, steel: np.ndarray, comp: np.ndarray) -> ColumnLayers:
    """Layers of every column of (rows, cols) rust/steel maps, rows from the resin side;
    ``comp`` (rows, cols, k): rust composition for the inner/outer split (NaN: none)."""
    rows, cols = rust.shape
    top = np.full(cols, -1)
    interface = np.full(cols, -1)
    split = np.full(cols, -1)
    for c in range(cols):
        r, s = rust[:, c], steel[:, c]
        for i in range(rows):
            remaining = s[i:]
            if s[i] and remaining.mean() >= STEEL_SHARE:
                interface[c] = i
                break
        stop = interface[c] if interface[c] >= 0 else rows
        for i in range(stop):
            if r[i] and r[i + 1 : i + 4].sum() >= 2:
                top[c] = i
                break
        if top[c] >= 0 and interface[c] > top[c] + 1:
            split[c] = _split(comp[top[c] : interface[c], c])
            if split[c] >= 0:
                split[c] += top[c]
    return ColumnLayers(top=top, interface=interface, split=split)


def crack_robust_top(top: np.ndarray) -> np.ndarray:
    """Column tops (-1: none) where a crack put the top deeper than the neighbours'
    median surface get that median instead."""
    out = top.copy()
    for c in map(int, np.flatnonzero(top >= 0)):
        lo, hi = max(c - NEIGHBOURS, 0), min(c + NEIGHBOURS + 1, top.size)
        neighbours = np.delete(top[lo:hi], c - lo)
        neighbours = neighbours[neighbours >= 0]
        if neighbours.size and top[c] > np.median(neighbours) + CRACK_ROWS:
            out[c] = round(float(np.median(neighbours)))
    return out


def _split(w: np.ndarray) -> int:
    """The row splitting ``w`` (rows, k) into two most different parts, or -1."""
    ok = np.isfinite(w).all(axis=1)
    idx = np.flatnonzero(ok)
    if idx.size < 4:
        return -1
    v = w[ok]
    total = ((v - v.mean(axis=0)) ** 2).sum()
    if total <= 0:
        return -1
    best, where = total, -1
    for k in range(2, len(v) - 1):
        sse = ((v[:k] - v[:k].mean(axis=0)) ** 2).sum() + ((v[k:] - v[k:].mean(axis=0)) ** 2).sum()
        if sse < best:
            best, where = sse, k
    if where < 0 or best > (1 - MIN_SPLIT_GAIN) * total:
        return -1
    return int(idx[where])


@dataclass(frozen=True)
class SampleLayers:
    """A sample's cross-section: per-column thicknesses (um, NaN where not found) and
    the numbers of its report."""

    sample: str
    step_um: float
    thickness_um: np.ndarray
    inner_um: np.ndarray
    porosity: float
    composition: dict[str, float]  #: mean weight fraction over the rust points
    alpha_gamma: float
    alpha_gamma_star: float
    alpha_gamma_star_sigma: float
    alpha_gamma_star_inner: float
    alpha_gamma_star_outer: float
    profile: pd.DataFrame  #: mean weight fractions vs distance from the interface (um)

    def summary(self) -> dict:
        t = self.thickness_um[np.isfinite(self.thickness_um)]
        inner = self.inner_um[np.isfinite(self.inner_um)]
        stats = {
            "thickness_um_mean": float(t.mean()) if t.size else np.nan,
            "thickness_um_sd": float(t.std()) if t.size else np.nan,
            "thickness_um_min": float(t.min()) if t.size else np.nan,
            "thickness_um_max": float(t.max()) if t.size else np.nan,
            "inner_um_mean": float(inner.mean()) if inner.size else np.nan,
            "porosity": self.porosity,
        }
        stats |= {f"wt_{name}": value for name, value in self.composition.items()}
        return {
            "sample": self.sample,
            **stats,
            "alpha_gamma": self.alpha_gamma,
            "alpha_gamma_star": self.alpha_gamma_star,
            "alpha_gamma_star_sigma": self.alpha_gamma_star_sigma,
            "alpha_gamma_star_inner": self.alpha_gamma_star_inner,
            "alpha_gamma_star_outer": self.alpha_gamma_star_outer,
        }


def alpha_gamma_star(mass: dict[str, np.ndarray]) -> float:
    """alpha/gamma* of summed masses (phases missing from ``mass`` count 0)."""
    zero = 0.0
    denominator = sum(float(np.nansum(mass.get(p, zero))) for p in (GAMMA, BETA, MAGNETITE))
    return float(np.nansum(mass[ALPHA])) / denominator if denominator > 0 else np.nan


def _oriented(grid: np.ndarray, steel_below: bool) -> np.ndarray:
    return grid if steel_below else grid[::-1]


@dataclass(frozen=True)
class PointKinds:
    """What each point of a sample is, by its phase fit (the rules above)."""

    rust: np.ndarray  #: (n,) bool
    steel: np.ndarray  #: (n,) bool
    resin: np.ndarray  #: (n,) bool: neither, the epoxy halo at least half its resin level


def _rust_columns(fit: zarr.Group) -> list[int]:
    """The fit's columns of the quantified rust phases."""
    quantified = fit.attrs["quantified"]
    return [k for k, lab in enumerate(fit.attrs["labels"]) if lab in RUST_LABELS and quantified[k]]


def _point_kinds(fit: zarr.Group, halo: np.ndarray) -> PointKinds:
    """The kinds from ``fit`` and its ``halo`` (read once by the caller)."""
    names = list(fit.attrs["phases"])
    scale, scale_sigma = fit["scale"][:], fit["scale_sigma"][:]
    rust_cols = _rust_columns(fit)
    rust_scale = np.nansum(scale[:, rust_cols], axis=1)
    rust_sigma = np.sqrt(np.nansum(scale_sigma[:, rust_cols] ** 2, axis=1))
    significant = rust_scale >= RUST_SIGMAS * np.maximum(rust_sigma, 1e-12)
    steel_lines = [k for k, n in enumerate(names) if n in STEEL_PHASES]
    lines = np.nansum(scale[:, steel_lines], axis=1)
    lines_sigma = np.sqrt(np.nansum(scale_sigma[:, steel_lines] ** 2, axis=1))
    # edges at half height (the beam centre on the boundary): the fluorescence halfway
    # between rust and steel, the resin halo at half its height in the resin
    background = fit["background"][:]
    steel_level = np.nanpercentile(background, STEEL_PERCENTILE)
    rust_level = np.nanmedian(background[significant]) if significant.any() else 0.0
    if steel_level >= FLUORESCENCE_CONTRAST * rust_level:
        steel = background >= (steel_level + rust_level) / 2
    else:  # no usable Fe fluorescence (detector threshold above Fe K): the lines
        steel = lines >= RUST_SIGMAS * np.maximum(lines_sigma, 1e-12)
    empty = ~significant & ~steel
    resin_level = np.nanmedian(halo[empty]) if empty.any() else np.nan
    resin_halo = halo >= resin_level / 2
    return PointKinds(rust=significant & ~resin_halo, steel=steel, resin=empty & resin_halo)


def point_kinds(store: str, sample: str) -> PointKinds:
    """Rust, steel and resin points of ``sample`` by its published phase fit (a
    StoreError naming the sample if it has none)."""
    fit = read_phase_fit(open_store(store), sample)
    return _point_kinds(fit, fit["halo"][:])


def sample_layers(store: str, sample: str) -> SampleLayers:
    """The cross-section numbers of ``sample`` from its published phase fit."""
    root = open_store(store)
    fit = read_phase_fit(root, sample)
    halo = fit["halo"][:]
    kinds = _point_kinds(fit, halo)
    rust, steel = kinds.rust, kinds.steel
    names = list(fit.attrs["phases"])
    quantified = np.array(fit.attrs["quantified"])
    density = np.array(fit.attrs["density_g_cm3"])
    scale = fit["scale"][:]
    weight = fit["weight_fraction"][:]
    rust_cols = _rust_columns(fit)
    positions = sample_group(root, sample)["positions"][:]
    rows_y = on_grid(root, sample, positions[:, 1])
    step = float(np.nanmedian(np.abs(np.diff(rows_y, axis=0)))) if rows_y.shape[0] > 1 else 1.0
    steel_grid = np.nan_to_num(on_grid(root, sample, steel)).astype(bool)
    rows = np.broadcast_to(np.arange(steel_grid.shape[0])[:, None], steel_grid.shape)
    steel_below = rows[steel_grid].mean() >= rows.mean() if steel_grid.any() else True
    grid = {  # rows counted from the resin side
        "rust": _oriented(np.nan_to_num(on_grid(root, sample, rust)).astype(bool), steel_below),
        "steel": _oriented(steel_grid, steel_below),
        "comp": _oriented(on_grid(root, sample, weight[:, rust_cols]), steel_below),
        "halo": _oriented(on_grid(root, sample, halo), steel_below),
        "weight": _oriented(on_grid(root, sample, weight), steel_below),
        "mass": _oriented(on_grid(root, sample, scale * density), steel_below),
    }
    layers = column_layers(grid["rust"], grid["steel"], grid["comp"])
    layers = ColumnLayers(
        top=crack_robust_top(layers.top), interface=layers.interface, split=layers.split
    )
    found = (layers.top >= 0) & (layers.interface > layers.top)
    thickness = np.where(found, (layers.interface - layers.top) * step, np.nan)
    inner = np.where(found & (layers.split >= 0), (layers.interface - layers.split) * step, np.nan)

    r = np.arange(grid["rust"].shape[0])[:, None]
    in_rust = found[None, :] & (r >= layers.top[None, :]) & (r < layers.interface[None, :])
    is_inner = in_rust & (layers.split[None, :] >= 0) & (r >= layers.split[None, :])
    above = (layers.top[None, :] >= 0) & (r < layers.top[None, :]) & ~grid["rust"]
    resin_level = np.nanmedian(grid["halo"][above]) if above.any() else np.nan
    porosity = (
        float(np.nanmean(np.clip(grid["halo"][in_rust] / resin_level, 0, 1)))
        if in_rust.any() and resin_level > 0
        else np.nan
    )
    composition = {
        names[k]: float(np.nanmean(grid["weight"][..., k][in_rust]))
        for k in np.flatnonzero(quantified)
    }

    def masses(mask: np.ndarray, columns: np.ndarray | None = None) -> dict[str, np.ndarray]:
        sel = mask if columns is None else mask[:, columns]
        m = grid["mass"] if columns is None else grid["mass"][:, columns]
        return {
            n: m[..., k][sel] for k, n in enumerate(names) if n in (ALPHA, GAMMA, BETA, MAGNETITE)
        }

    m = masses(in_rust)
    index = alpha_gamma_star(m)
    rng = np.random.default_rng(0)
    used = np.flatnonzero(found)
    boot = (
        [alpha_gamma_star(masses(in_rust, rng.choice(used, used.size))) for _ in range(BOOTSTRAP)]
        if used.size
        else []
    )
    gamma = float(np.nansum(m[GAMMA]))
    distance = (layers.interface[None, :] - r) * step
    profile = pd.DataFrame(
        {
            "distance_um": distance[in_rust],
            **{names[k]: grid["weight"][..., k][in_rust] for k in np.flatnonzero(quantified)},
        }
    )
    profile = profile.groupby("distance_um").mean().reset_index()
    return SampleLayers(
        sample=sample,
        step_um=step,
        thickness_um=thickness,
        inner_um=inner,
        porosity=porosity,
        composition=composition,
        alpha_gamma=float(np.nansum(m[ALPHA])) / gamma if gamma > 0 else np.nan,
        alpha_gamma_star=index,
        alpha_gamma_star_sigma=float(np.nanstd(boot)) if boot else np.nan,
        alpha_gamma_star_inner=alpha_gamma_star(masses(is_inner)),
        alpha_gamma_star_outer=alpha_gamma_star(masses(in_rust & ~is_inner)),
        profile=profile,
    )
