"""Confidence maps and phase maps of a store's predictions, as PNG files."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from xrdmap.classes import CLASS_NAMES, THRESHOLD
from xrdmap.outputs import written_whole
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


#: Layout of the map figures, inches: fixed margins instead of a layout engine (drawing
#: the 31 maps of the full preset took 17 s with constrained layout; see README).
PANEL_H = 2.2
MARGIN = {"left": 0.75, "right": 1.1, "bottom": 0.55, "top": 0.75, "wspace": 0.35, "hspace": 0.5}
LEGEND_W = 3.0
CONFIDENCE_COLUMNS = 3


#: Fewest drawing jobs (a figure or more each) worth a pool of processes: a figure
#: takes 0.5-0.6 s, starting the pool's server the first time 1.0-1.5 s.
POOL_MIN_JOBS = 4


def _drawing_context() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that has imported this module (Matplotlib, Zarr)
    once, in a process of its own: each drawing process starts in milliseconds instead
    of importing them again, and no process is forked from a caller holding threads
    (TensorFlow's, Prefect's)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _pool_workers(n_jobs: int) -> int:
    """Processes of a :func:`figure_pool` for ``n_jobs``; 0: a thread of this process."""
    workers = min(n_jobs, os.cpu_count() or 1)
    return 0 if n_jobs < POOL_MIN_JOBS or workers < 2 else workers


def start_drawing_server(n_jobs: int) -> None:
    """Start the server of a :func:`figure_pool` for ``n_jobs`` now (it imports in the
    background), so that it is ready when the figures are due."""
    if _pool_workers(n_jobs):
        _drawing_context()  # sets what the server preloads, before it starts
        multiprocessing.forkserver.ensure_running()


def figure_pool(n_jobs: int) -> Executor:
    """Processes, one per core (at most one per job), to draw many figures at once
    (Matplotlib holds the GIL: threads would draw one figure at a time); one thread of
    this process for fewer than :data:`POOL_MIN_JOBS` jobs or on one core."""
    workers = _pool_workers(n_jobs)
    if not workers:
        return ThreadPoolExecutor(1)
    return ProcessPoolExecutor(workers, mp_context=_drawing_context())


def _inches_position(fig: Figure, left: float, bottom: float, width: float, height: float):
    """Figure-fraction position of a box given in inches from the lower left corner."""
    w, h = fig.get_size_inches()
    return (left / w, bottom / h, width / w, height / h)


def _inches_axes(fig: Figure, left: float, bottom: float, width: float, height: float):
    """An axes placed in inches from the figure's lower left corner."""
    return fig.add_axes(_inches_position(fig, left, bottom, width, height))


class ConfidenceFigure:
    """One confidence map per class on one colour scale, built once and redrawn for
    each sample: a sample's size, data and title are set on the same axes, so
    Matplotlib's axes and tick objects (most of a figure's time) are made once per
    process. A redrawn figure is the same to the pixel as a new one."""

    def __init__(self) -> None:
        self.cols = CONFIDENCE_COLUMNS
        self.rows = -(-len(CLASS_NAMES) // self.cols)
        self.fig = Figure()
        self.axes = []
        self.images = []
        for i, name in enumerate(CLASS_NAMES):
            row, col = divmod(i, self.cols)
            ax = self.fig.add_axes((0, 0, 1, 1))
            image = ax.imshow(
                np.zeros((1, 1)),
                cmap="cividis",
                vmin=0,
                vmax=1,
                interpolation="nearest",
                aspect="auto",
            )
            ax.set_title(name, fontsize=9, y=1.0)  # a set y: no automatic placement
            # every panel has the same axes: numbers on the outer ones only, few ticks
            # (Matplotlib's ticks were most of the figure's time)
            ax.locator_params(nbins=4)
            last_row = row == self.rows - 1
            ax.tick_params(labelsize=7, labelbottom=last_row, labelleft=col == 0)
            if last_row:
                ax.set_xlabel("x (um)", fontsize=8)
            if col == 0:
                ax.set_ylabel("y (um, to steel)", fontsize=8)
            self.axes.append(ax)
            self.images.append(image)
        self.bar = self.fig.add_axes((0, 0, 1, 1))
        self.fig.colorbar(image, cax=self.bar, label="confidence")  # one scale, 0..1
        self.title = self.fig.suptitle("")

    def save(self, grid: np.ndarray, extent: tuple, title: str, path: Path) -> None:
        """Draw ``grid`` (rows, cols, classes) over ``extent`` (um) into ``path``."""
        m = MARGIN
        aspect = (extent[1] - extent[0]) / (extent[2] - extent[3])
        panel_w = max(1.2, PANEL_H * aspect)
        fig_w = m["left"] + self.cols * panel_w + (self.cols - 1) * m["wspace"] + m["right"]
        fig_h = m["bottom"] + self.rows * PANEL_H + (self.rows - 1) * m["hspace"] + m["top"]
        self.fig.set_size_inches(fig_w, fig_h)
        for i, (ax, image) in enumerate(zip(self.axes, self.images, strict=True)):
            row, col = divmod(i, self.cols)
            left = m["left"] + col * (panel_w + m["wspace"])
            bottom = fig_h - m["top"] - (row + 1) * PANEL_H - row * m["hspace"]
            ax.set_position(_inches_position(self.fig, left, bottom, panel_w, PANEL_H))
            image.set_data(grid[..., i])
            image.set_extent(extent)
        bar_h = fig_h - m["bottom"] - m["top"]
        bar = _inches_position(self.fig, fig_w - m["right"] + 0.25, m["bottom"], 0.18, bar_h)
        self.bar.set_position(bar)
        self.title.set_text(title)
        self.title.set_y(1 - 0.25 / fig_h)
        with written_whole(path) as part:
            self.fig.savefig(part, dpi=110)


class PhaseFigure:
    """The phase map of a sample with its legend, built once and redrawn per sample
    (as :class:`ConfidenceFigure`)."""

    def __init__(self) -> None:
        self.fig = Figure()
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.image = self.ax.imshow(np.ones((1, 1, 3)), interpolation="nearest", aspect="auto")
        self.ax.set_xlabel("x (um)")
        self.ax.set_ylabel("y (um, towards the steel)")
        self.title = self.ax.set_title("", fontsize=10)
        _legend(self.ax)

    def save(self, image: np.ndarray, extent: tuple, title: str, path: Path) -> None:
        """Draw ``image`` (rows, cols, 3) over ``extent`` (um) into ``path``."""
        m = MARGIN
        aspect = (extent[1] - extent[0]) / (extent[2] - extent[3])
        map_w, map_h = max(2.5, 4.5 * aspect), 4.5
        self.fig.set_size_inches(m["left"] + map_w + 0.3 + LEGEND_W, m["bottom"] + map_h + 0.8)
        self.ax.set_position(_inches_position(self.fig, m["left"], m["bottom"], map_w, map_h))
        self.image.set_data(image)
        self.image.set_extent(extent)
        self.title.set_text(title)
        with written_whole(path) as part:
            self.fig.savefig(part, dpi=110)


#: This thread's map figures, made on its first sample (a figure is not thread-safe).
_FIGURES = threading.local()


def _sample_figures() -> tuple[ConfidenceFigure, PhaseFigure]:
    if not hasattr(_FIGURES, "pair"):
        _FIGURES.pair = ConfidenceFigure(), PhaseFigure()
    return _FIGURES.pair


def write_sample_maps(store: str, sample: str, version: str, out_dir: Path) -> list[Path]:
    """``<sample>_confidence.png`` (one map per class, one colour scale) and
    ``<sample>_phases.png``, drawn on this thread's figures."""
    root = open_store(store)
    conf, abstain = sample_calls(root, sample, version)
    extent = map_extent(root, sample)
    out_dir.mkdir(parents=True, exist_ok=True)
    confidence_figure, phase_figure = _sample_figures()
    conf_png = out_dir / f"{sample}_confidence.png"
    confidence_figure.save(
        on_grid(root, sample, conf),
        extent,
        f"{sample}: confidence per class (model {version})",
        conf_png,
    )
    valid = int((~np.isnan(conf).any(axis=1)).sum())
    share = abstain.sum() / max(valid, 1)
    phase_png = out_dir / f"{sample}_phases.png"
    phase_figure.save(
        phase_image(root, sample, conf, abstain),
        extent,
        f"{sample}: corrosion products (model {version})\n"
        f"abstained on {int(abstain.sum())} of {valid} points ({share:.1%})",
        phase_png,
    )
    return [conf_png, phase_png]


def write_overview(store: str, version: str, out_dir: Path) -> Path:
    """The phase maps of every sample side by side, same vertical scale (um)."""
    root = open_store(store)
    names = samples(root)
    extents = {s: map_extent(root, s) for s in names}
    widths = np.array([e[1] - e[0] for e in extents.values()])
    top = max(e[2] for e in extents.values())
    m, gap, map_h = MARGIN, 0.3, 4.2
    maps_w = min(1.6 * len(names), 27.0) - gap * (len(names) - 1)
    fig_w = m["left"] + maps_w + gap * (len(names) - 1) + 0.3 + LEGEND_W
    fig_h = m["bottom"] + map_h + 0.9
    fig = Figure(figsize=(fig_w, fig_h))
    left = m["left"]
    for sample, width in zip(names, maps_w * widths / widths.sum(), strict=True):
        ax = _inches_axes(fig, left, m["bottom"], width, map_h)
        left += width + gap
        conf, abstain = sample_calls(root, sample, version)
        extent = extents[sample]
        ax.imshow(
            phase_image(root, sample, conf, abstain),
            extent=extent,
            interpolation="nearest",
            aspect="auto",
        )
        ax.set_ylim(top, extent[3])
        ax.set_title(sample, fontsize=8, y=1.0)
        ax.set_xlabel("x (um)", fontsize=8)
        ax.tick_params(labelsize=7)
        if sample == names[0]:
            ax.set_ylabel("y (um, towards the steel)")
    _legend(ax)
    fig.suptitle(f"Corrosion products of every sample (model {version})", y=1 - 0.2 / fig_h)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "overview.png"
    with written_whole(path) as part:
        fig.savefig(part, dpi=110)
    return path
