"""Confidence maps and phase maps of a store's predictions, as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from xrdmap.classes import CLASS_NAMES
from xrdmap.evaluation import THRESHOLD
from xrdmap.store import (
    map_extent,
    on_grid,
    open_store,
    read_confidences,
    read_spread,
    samples,
)
from xrdmap.trust import abstain_mask

#: One colour per combination of corrosion products present (confidence >= 0.5).
COMBINATION_COLOURS = {
    (): "#1a1a1a",
    ("alpha-FeOOH",): "#f28e2b",
    ("gamma-FeOOH",): "#59a14f",
    ("Fe3O4",): "#4e79a7",
    ("alpha-FeOOH", "gamma-FeOOH"): "#edc948",
    ("alpha-FeOOH", "Fe3O4"): "#b07aa1",
    ("gamma-FeOOH", "Fe3O4"): "#76b7b2",
    ("alpha-FeOOH", "gamma-FeOOH", "Fe3O4"): "#e15759",
}
QUARANTINED_COLOUR = "#9e9e9e"
#: Points the model should not be trusted on (:func:`xrdmap.trust.abstain_mask`).
ABSTAIN_COLOUR = "#ff9da7"


def phase_rgb(confidence: np.ndarray, abstain: np.ndarray) -> np.ndarray:
    """(n, 3) colour of each point, one per combination of products present; the
    abstain colour where ``abstain``."""
    present = {
        name: confidence[:, CLASS_NAMES.index(name)] >= THRESHOLD
        for name in ("alpha-FeOOH", "gamma-FeOOH", "Fe3O4")
    }
    rgb = np.zeros((confidence.shape[0], 3))
    for combo, colour in COMBINATION_COLOURS.items():
        sel = np.ones(confidence.shape[0], bool)
        for name, mask in present.items():
            sel &= mask if name in combo else ~mask
        rgb[sel] = to_rgb(colour)
    rgb[abstain] = to_rgb(ABSTAIN_COLOUR)
    rgb[np.isnan(confidence).any(axis=1)] = to_rgb(QUARANTINED_COLOUR)
    return rgb


def sample_calls(root: zarr.Group, sample: str, version: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidences, abstain mask) of ``sample`` by model ``version``."""
    conf = read_confidences(root, sample, version)
    return conf, abstain_mask(conf, read_spread(root, sample, version))


def abstain_counts(store: str, version: str) -> dict[str, tuple[int, int]]:
    """Per sample: (points abstained, points with a pattern)."""
    root = open_store(store)
    out = {}
    for sample in samples(root):
        conf, abstain = sample_calls(root, sample, version)
        out[sample] = (int(abstain.sum()), int((~np.isnan(conf).any(axis=1)).sum()))
    return out


def phase_image(
    root: zarr.Group, sample: str, confidence: np.ndarray, abstain: np.ndarray
) -> np.ndarray:
    """(rows, cols, 3) phase map; cells the scan never visited are white."""
    return np.nan_to_num(on_grid(root, sample, phase_rgb(confidence, abstain)), nan=1.0)


def _legend(ax) -> None:
    handles = [
        Patch(color=c, label=" + ".join(combo) if combo else "none of them")
        for combo, c in COMBINATION_COLOURS.items()
    ]
    handles.append(Patch(color=ABSTAIN_COLOUR, label="abstain: undecided or members disagree"))
    handles.append(Patch(color=QUARANTINED_COLOUR, label="quarantined point"))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        fontsize=8,
        title=f"confidence >= {THRESHOLD}",
        title_fontsize=8,
    )


def write_sample_maps(store: str, sample: str, version: str, out_dir: Path) -> list[Path]:
    """``<sample>_confidence.png`` (one map per class) and ``<sample>_phases.png``."""
    root = open_store(store)
    conf, abstain = sample_calls(root, sample, version)
    extent = map_extent(root, sample)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = extent[1] - extent[0]
    height = extent[2] - extent[3]
    panel_h = 3.2
    panel_w = max(1.6, panel_h * width / height) + 1.2
    fig = Figure(figsize=(panel_w * len(CLASS_NAMES), panel_h + 1.2), layout="constrained")
    axes = fig.subplots(1, len(CLASS_NAMES))
    for ax, (i, name) in zip(axes, enumerate(CLASS_NAMES), strict=True):
        image = ax.imshow(
            on_grid(root, sample, conf[:, i]),
            cmap="cividis",
            vmin=0,
            vmax=1,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("x (um)")
        if i == 0:
            ax.set_ylabel("y (um, towards the steel)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="confidence")
    fig.suptitle(f"{sample}: confidence per class (model {version})")
    conf_png = out_dir / f"{sample}_confidence.png"
    fig.savefig(conf_png, dpi=110)

    fig = Figure(figsize=(max(3.0, 5 * width / height) + 2.5, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(phase_image(root, sample, conf, abstain), extent=extent, interpolation="nearest")
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um, towards the steel)")
    valid = int((~np.isnan(conf).any(axis=1)).sum())
    share = abstain.sum() / max(valid, 1)
    ax.set_title(
        f"{sample}: corrosion products (model {version})\n"
        f"abstained on {int(abstain.sum())} of {valid} points ({share:.1%})",
        fontsize=10,
    )
    _legend(ax)
    phase_png = out_dir / f"{sample}_phases.png"
    fig.savefig(phase_png, dpi=110, bbox_inches="tight")
    return [conf_png, phase_png]


def write_overview(store: str, version: str, out_dir: Path) -> Path:
    """The phase maps of every sample side by side, same vertical scale (um)."""
    root = open_store(store)
    names = samples(root)
    extents = {s: map_extent(root, s) for s in names}
    widths = [e[1] - e[0] for e in extents.values()]
    fig = Figure(figsize=(min(3 + 1.6 * len(names), 30), 6), layout="constrained")
    axes = fig.subplots(1, len(names), gridspec_kw={"width_ratios": widths}, squeeze=False)
    top = max(e[2] for e in extents.values())
    for ax, sample in zip(axes[0], names, strict=True):
        conf, abstain = sample_calls(root, sample, version)
        extent = extents[sample]
        ax.imshow(phase_image(root, sample, conf, abstain), extent=extent, interpolation="nearest")
        ax.set_ylim(top, extent[3])
        ax.set_title(sample, fontsize=8)
        ax.set_xlabel("x (um)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("y (um, towards the steel)")
    _legend(axes[0][-1])
    fig.suptitle(f"Corrosion products of every sample (model {version})")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "overview.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
