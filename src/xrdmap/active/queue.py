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

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from matplotlib.figure import Figure

from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import ImportReport, import_labels
from xrdmap.labels import LabelsError, check_labels_table
from xrdmap.maps import figure_pool
from xrdmap.phases import ReferenceLines
from xrdmap.store import (
    ROOT_ATTR,
    map_extent,
    mean_intensity,
    on_grid,
    open_store,
    point_pattern,
    point_position,
    queue_root,
    read_confidences,
    sample_group,
    sample_sizes,
)

QUEUE_FILE = "queue.csv"
PICTURES = "pictures"
COLD_START_DIR = "cold-start"


def queue_dir(store: str, version: str) -> Path:
    """``<store>-queue/<version>`` (``cold-start`` before any model)."""
    return queue_root(store) / (version or COLD_START_DIR)


def new_queue_dir(store: str, version: str) -> Path:
    """``<store>-queue/<version>``, or the first free ``-2``, ``-3``... beside it."""
    base = queue_dir(store, version)
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
    attribution: np.ndarray | None = None,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Pattern with reference lines per class (left), the point on a map (right): the
    confidence map of the class it is ``asked_about``, or the mean intensity before any
    model (``version`` empty). ``attribution`` (n_classes, nbins): why the model called
    what it called (:mod:`models.attribution`), drawn under the reference lines for the
    class asked about and every class called (confidence >= 0.5). ``grid``: 2theta and
    chi (deg) of every detector pixel: the point's raw frame is drawn under the map
    (log scale, 2theta and chi contours), where experts tell a grain's spots from rings.
    """
    tth, pattern = point_pattern(root, sample, point)
    conf = read_confidences(root, sample, version) if version else None
    rows = 3 if attribution is not None and conf is not None else 2
    fig = Figure(figsize=(12, 5.2 + 1.8 * (rows - 2)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.2, 1])  # type: ignore[misc]
    axes = left.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4, 1.6][:rows]})
    ax, ax_lines = axes[0], axes[1]
    if grid is not None:
        ax_map, ax_frame = right.subplots(2, 1, gridspec_kw={"height_ratios": [2.2, 1]})
        _draw_frame(ax_frame, sample_group(root, sample)["frames"][point], grid)
    else:
        ax_map = right.subplots()
    ax.plot(tth, np.clip(pattern, 1e-3, None), color="black", lw=0.9)
    ax.set_yscale("log")
    ax.set_xlim(tth[0], tth[-1])
    ax.set_ylabel("intensity (counts / pixel, log)")
    ax.set_title(f"{sample} point {point}", fontsize=10)
    colours = _class_colours()
    by_class: dict[str, list[ReferenceLines]] = {}
    for ref in lines.values():
        if ref.label is not None:  # phases.yaml: every phase has one
            by_class.setdefault(ref.label, []).append(ref)
    ordered = sorted(by_class, key=CLASS_NAMES.index)
    for k, label in enumerate(ordered):  # one row of reference lines per class
        for ref in by_class[label]:
            strong = ref.relative_intensity >= 5
            height = 0.35 + 0.5 * ref.relative_intensity[strong] / 100
            ax_lines.vlines(
                ref.tth_deg[strong], k - height / 2, k + height / 2, color=colours[label], lw=1.5
            )
            for x in ref.tth_deg[strong]:
                ax.axvline(x, color=colours[label], lw=0.4, alpha=0.25)
    ax_lines.set_yticks(range(len(ordered)), ordered, fontsize=7)
    ax_lines.set_ylim(len(ordered) - 0.5, -0.5)
    ax_lines.set_xlabel("2theta (deg); reference lines >= 5% of each phase's strongest")
    if attribution is not None and conf is not None:
        _draw_attribution(axes[2], tth, attribution, conf[point], asked_about, colours)

    extent = map_extent(root, sample)
    xy = point_position(root, sample, point)
    if conf is not None:
        shown = CLASS_NAMES.index(asked_about)
        image = ax_map.imshow(
            on_grid(root, sample, conf[:, shown]),
            cmap="cividis",
            vmin=0,
            vmax=1,
            extent=extent,
            interpolation="nearest",
        )
        fig.colorbar(image, ax=ax_map, shrink=0.8, label=f"confidence {CLASS_NAMES[shown]}")
        ax_map.set_title(
            f"{CLASS_NAMES[shown]} (model {version}): {conf[point, shown]:.2f} here", fontsize=9
        )
    else:
        mean = mean_intensity(root, sample)
        image = ax_map.imshow(
            on_grid(root, sample, np.log10(np.clip(mean, 1e-3, None))),
            cmap="cividis",
            extent=extent,
            interpolation="nearest",
        )
        fig.colorbar(image, ax=ax_map, shrink=0.8, label="log10 mean intensity")
        ax_map.set_title("mean intensity (no model yet)", fontsize=9)
    ax_map.plot(*xy, marker="o", mfc="none", mec="red", ms=12, mew=2)
    ax_map.set_xlabel("x (um)")
    ax_map.set_ylabel("y (um, towards the steel)")
    fig.savefig(path, dpi=90)


def _picture_of(store: str, *args) -> None:
    """:func:`point_picture` of one queued point, in a :func:`xrdmap.maps.figure_pool`."""
    point_picture(open_store(store), *args)


def _draw_frame(ax, frame: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> None:
    """The raw frame, log counts (dead and overflowing pixels blank), with 2theta
    (white, every 5 deg) and chi (grey, every 10 deg) contours."""
    tth, chi = grid
    counts = np.where(frame >= 0, frame, np.nan).astype(float)
    shown = np.log10(np.clip(counts, 1, None))
    low, high = np.nanpercentile(shown, [1, 99.9])
    ax.imshow(shown, cmap="magma", vmin=low, vmax=high, origin="upper", aspect="equal")
    step = 5
    levels = np.arange(np.ceil(np.nanmin(tth) / step) * step, np.nanmax(tth), step)
    lines = ax.contour(tth, levels=levels, colors="white", linewidths=0.5)
    ax.clabel(lines, fmt="%g", fontsize=6)
    chi_levels = np.arange(np.ceil(np.nanmin(chi) / 10) * 10, np.nanmax(chi), 10)
    ax.contour(chi, levels=chi_levels, colors="#aaaaaa", linewidths=0.4, linestyles="dotted")
    ax.set_title("raw frame, log counts (2theta white, chi grey)", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def frame_grid(root: zarr.Group, sample: str) -> tuple[np.ndarray, np.ndarray] | None:
    """2theta and chi (deg) of every pixel of the store's detector, from the geometry it
    was integrated with (None if the stored PONI no longer loads)."""
    from xrdmap.errors import GeometryError
    from xrdmap.integrate import stored_geometry

    record = root.attrs[ROOT_ATTR]
    shape = tuple(sample_group(root, sample)["frames"].shape[1:])
    try:
        ai = stored_geometry(record["settings"], record["geometry"], shape)
    except GeometryError:
        return None
    return ai.center_array(shape, unit="2th_deg"), ai.center_array(shape, unit="chi_deg")


def _draw_attribution(ax, tth, attribution, confidence, asked_about, colours) -> None:
    """Integrated gradients per 2theta bin of the classes asked about or called."""
    shown = [i for i, name in enumerate(CLASS_NAMES) if name == asked_about or confidence[i] >= 0.5]
    for i in shown:
        ax.plot(
            tth,
            attribution[i],
            color=colours[CLASS_NAMES[i]],
            lw=1.0,
            label=f"{CLASS_NAMES[i]} ({confidence[i]:.2f})",
        )
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("attribution")
    ax.legend(fontsize=7, ncols=3, loc="upper right")
    ax.set_xlabel(
        "2theta (deg); why: integrated gradients of each confidence (up: the bin raises it)"
    )


def write_queue(
    store: str,
    table: pd.DataFrame,
    version: str,
    out_dir: Path,
    lines: dict[str, ReferenceLines],
    attributions: dict[tuple[str, int], np.ndarray] | None = None,
) -> Path:
    """Write ``queue.csv`` and the pictures into ``out_dir`` (created; must be new);
    ``attributions`` per (sample, point) are drawn under their patterns."""
    out_dir.mkdir(parents=True, exist_ok=False)
    (out_dir / PICTURES).mkdir()
    root = open_store(store)
    queue = table[["sample", "point"]].copy()
    for name in CLASS_NAMES:
        queue[name] = pd.Series([pd.NA] * len(queue), dtype="Int8")
    queue["labeler"] = ""
    queue["queried_by"] = version
    rest = table.drop(columns=["sample", "point"])
    queue = pd.concat([queue, rest], axis=1)
    pictures = []
    # one geometry per store: computed once per frame shape, not once per sample
    by_shape: dict[tuple, tuple[np.ndarray, np.ndarray] | None] = {}
    grids = {}
    for s in dict.fromkeys(table["sample"]):
        shape = tuple(sample_group(root, s)["frames"].shape[1:])
        if shape not in by_shape:
            by_shape[shape] = frame_grid(root, s)
        grids[s] = by_shape[shape]
    with figure_pool(len(table)) as pool:
        drawn = []
        for sample, point, asked in zip(
            table["sample"], table["point"], table["asked_about"], strict=True
        ):
            rel = f"{PICTURES}/{sample}_{int(point)}.png"
            why = (attributions or {}).get((sample, int(point)))
            args = (sample, int(point), version, asked, lines, out_dir / rel, why, grids[sample])
            drawn.append(pool.submit(_picture_of, store, *args))
            pictures.append(rel)
        for future in drawn:
            future.result()
    queue["picture"] = pictures
    path = out_dir / QUEUE_FILE
    queue.to_csv(path, index=False, float_format="%.4f")
    return path


def newest_queue(store: str) -> Path:
    """The folder of the store's most recently written relabel queue."""
    queues = sorted(queue_root(store).glob(f"*/{QUEUE_FILE}"), key=lambda p: p.stat().st_mtime)
    if not queues:
        raise LabelsError(f"{store}: no relabel queue yet (run xrdmap query {store})")
    return queues[-1].parent


def read_queue(queue_dir: Path) -> pd.DataFrame:
    """The queue table of ``queue_dir`` (a folder written by ``xrdmap query``)."""
    path = Path(queue_dir) / QUEUE_FILE
    if not path.is_file():
        raise LabelsError(f"{queue_dir}: no {QUEUE_FILE} here (a folder written by xrdmap query)")
    return pd.read_csv(path, dtype={"sample": str, "queried_by": str})


def pending_rows(queue: pd.DataFrame, labeled: set[tuple[str, int]]) -> pd.DataFrame:
    """Rows of ``queue`` whose (sample, point) is not in ``labeled``."""
    keys = zip(queue["sample"], queue["point"].astype(int), strict=True)
    return queue[[key not in labeled for key in keys]]


ROUNDS_FILE = "rounds.csv"


def append_round(store: str, record: dict) -> pd.DataFrame:
    """Append one active-learning round to ``<store>-queue/rounds.csv``; the whole table."""
    history = queue_root(store) / ROUNDS_FILE
    history.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([record]).to_csv(history, mode="a", header=not history.exists(), index=False)
    return pd.read_csv(history)


def label_queued_point(
    store: str,
    queue: pd.DataFrame,
    *,
    sample: str,
    point: str,
    classes: set[str],
    labeler: str,
    origin: str,
) -> ImportReport:
    """Store one expert answer for a queued point (the labeling page's save): the point
    must be in ``queue``, the labeler named, the classes known; the row is checked like
    a CSV import and appended as one batch (source ``label-ui``)."""
    queued = queue[(queue["sample"] == sample) & (queue["point"].astype(str) == point)]
    if queued.empty:
        raise LabelsError(f"point {point} of {sample} is not in this queue")
    if not labeler:
        raise LabelsError("labeler: give your name")
    unknown = classes - set(CLASS_NAMES)
    if unknown:
        raise LabelsError(f"unknown class(es) {', '.join(sorted(unknown))}")
    row = {
        "sample": sample,
        "point": int(point),
        **{c: int(c in classes) for c in CLASS_NAMES},
        "labeler": labeler,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "queried_by": str(queued["queried_by"].fillna("").iloc[0]),
    }
    table = check_labels_table(
        pd.DataFrame([row]), sample_sizes(store), origin="label-ui", source="label-ui"
    )
    return import_labels(store, table, origin=origin)
