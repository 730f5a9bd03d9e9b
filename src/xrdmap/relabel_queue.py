"""The relabel queue on disk: a CSV the expert fills in, and one picture per point.

``<store>-queue/<model version>/queue.csv`` (``cold-start`` before any model; a queue
is never overwritten: a second query of one version goes to ``<version>-2``)::

    sample,point,Fe3O4,...,Other,labeler,queried_by,x_um,y_um,score,reason,
        conf_Fe3O4,...,conf_Other,picture

The class columns are left blank for the expert (0 or 1 each); rows left blank are
skipped on import (`xrdmap labels import STORE queue.csv`), so a queue can be labeled
in parts. ``pictures/<sample>_<point>.png`` shows the point's pattern with the
reference line positions of every class, and its place on a map of the sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from matplotlib.figure import Figure

from xrdmap.classes import CLASS_NAMES
from xrdmap.phases import ReferenceLines
from xrdmap.store import beside_store

QUEUE_FILE = "queue.csv"
PICTURES = "pictures"
COLD_START_DIR = "cold-start"


def new_queue_dir(store: str, version: str) -> Path:
    """``<store>-queue/<version>``, or the first free ``-2``, ``-3``... beside it."""
    base = beside_store(store, "-queue") / (version or COLD_START_DIR)
    candidate, k = base, 1
    while candidate.exists():
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


def _class_colours() -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: cmap(i) for i, name in enumerate(CLASS_NAMES)}


def point_picture(
    root: zarr.Group,
    sample: str,
    point: int,
    version: str,
    asked_about: str,
    lines: dict[str, ReferenceLines],
    path: Path,
) -> None:
    """Pattern with reference lines per class (left), the point on a map (right): the
    confidence map of the class it is ``asked_about``, or the mean intensity before any
    model (``version`` empty)."""
    from xrdmap.maps import sample_grid

    group = root[sample]
    tth = group["tth_deg"][:]
    pattern = group["patterns"][point]
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.2, 1])
    ax, ax_lines = left.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    ax_map = right.subplots()
    ax.plot(tth, np.clip(pattern, 1e-3, None), color="black", lw=0.9)
    ax.set_yscale("log")
    ax.set_xlim(tth[0], tth[-1])
    ax.set_ylabel("intensity (counts / pixel, log)")
    ax.set_title(f"{sample} point {point}", fontsize=10)
    colours = _class_colours()
    by_class: dict[str, list[ReferenceLines]] = {}
    for ref in lines.values():
        by_class.setdefault(ref.label, []).append(ref)
    ordered = sorted(by_class, key=CLASS_NAMES.index)
    for k, label in enumerate(ordered):  # one row of reference lines per class
        for ref in by_class[label]:
            strong = ref.relative_intensity >= 5
            height = 0.35 + 0.5 * ref.relative_intensity[strong] / 100
            ax_lines.vlines(ref.tth_deg[strong], k - height / 2, k + height / 2,
                            color=colours[label], lw=1.5)  # fmt: skip
            for x in ref.tth_deg[strong]:
                ax.axvline(x, color=colours[label], lw=0.4, alpha=0.25)
    ax_lines.set_yticks(range(len(ordered)), ordered, fontsize=7)
    ax_lines.set_ylim(len(ordered) - 0.5, -0.5)
    ax_lines.set_xlabel("2theta (deg); reference lines >= 5% of each phase's strongest")

    grid, extent = sample_grid(root, sample)
    xy = group["positions"][point]
    if version:
        conf = group["confidence"][version][:]
        shown = CLASS_NAMES.index(asked_about)
        image = ax_map.imshow(conf[:, shown].reshape(grid), cmap="cividis", vmin=0, vmax=1,
                              extent=extent, interpolation="nearest")  # fmt: skip
        fig.colorbar(image, ax=ax_map, shrink=0.8, label=f"confidence {CLASS_NAMES[shown]}")
        ax_map.set_title(f"{CLASS_NAMES[shown]} (model {version}): "
                         f"{conf[point, shown]:.2f} here", fontsize=9)  # fmt: skip
    else:
        mean = np.nanmean(group["patterns"][:], axis=1)
        image = ax_map.imshow(np.log10(np.clip(mean, 1e-3, None)).reshape(grid), cmap="cividis",
                              extent=extent, interpolation="nearest")  # fmt: skip
        fig.colorbar(image, ax=ax_map, shrink=0.8, label="log10 mean intensity")
        ax_map.set_title("mean intensity (no model yet)", fontsize=9)
    ax_map.plot(*xy, marker="o", mfc="none", mec="red", ms=12, mew=2)
    ax_map.set_xlabel("x (um)")
    ax_map.set_ylabel("y (um, towards the steel)")
    fig.savefig(path, dpi=90)


def write_queue(
    store: str,
    table: pd.DataFrame,
    version: str,
    out_dir: Path,
    lines: dict[str, ReferenceLines],
) -> Path:
    """Write ``queue.csv`` and the pictures into ``out_dir`` (created; must be new)."""
    out_dir.mkdir(parents=True, exist_ok=False)
    (out_dir / PICTURES).mkdir()
    root = zarr.open_group(store, mode="r")
    queue = table[["sample", "point"]].copy()
    for name in CLASS_NAMES:
        queue[name] = pd.Series([pd.NA] * len(queue), dtype="Int8")
    queue["labeler"] = ""
    queue["queried_by"] = version
    rest = table.drop(columns=["sample", "point"])
    queue = pd.concat([queue, rest], axis=1)
    pictures = []
    for sample, point, asked in zip(table["sample"], table["point"], table["asked_about"],
                                    strict=True):  # fmt: skip
        rel = f"{PICTURES}/{sample}_{int(point)}.png"
        point_picture(root, sample, int(point), version, asked, lines, out_dir / rel)
        pictures.append(rel)
    queue["picture"] = pictures
    path = out_dir / QUEUE_FILE
    queue.to_csv(path, index=False, float_format="%.4f")
    return path
