"""The beamtime report: one table and one figure over every sample of a store.

Per sample (from the phase fit, :mod:`xrdmap.cross_section`): rust thickness (mean,
spread, min, max), inner layer, porosity, the mean weight fractions of the rust phases,
alpha/gamma and alpha/gamma* with its spread over map columns, and the points with an
unexplained line. A sample sheet (CSV with a ``sample`` column: condition, environment,
exposure years...) adds its columns to the table and to the figure's labels.

Written beside the store in ``<store>-report/``: ``report.csv``, ``report.png`` and
``profiles.csv`` (weight fractions vs distance from the steel/rust interface).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from xrdmap.cross_section import sample_layers
from xrdmap.errors import InputError
from xrdmap.outputs import written_whole
from xrdmap.store import open_store, read_phase_fit, report_dir, samples

#: The rust phases shown in the composition bars, with their colours.
RUST_COLOURS = {
    "goethite": "#e08a2c",
    "lepidocrocite": "#c9302c",
    "magnetite": "#2b2b2b",
    "akaganeite": "#3d7ab8",
    "ferrihydrite": "#9a6b43",
    "hematite": "#7a1f5c",
}
FORMULA = {
    "goethite": "alpha-FeOOH",
    "lepidocrocite": "gamma-FeOOH",
    "magnetite": "Fe3O4",
    "akaganeite": "beta-FeOOH",
    "ferrihydrite": "ferrihydrite",
    "hematite": "alpha-Fe2O3",
}


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """A sample sheet: CSV with a ``sample`` column (one line error otherwise)."""
    try:
        sheet = pd.read_csv(path, dtype={"sample": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the sample sheet: {exc}") from None
    if "sample" not in sheet.columns:
        raise InputError(f"{path}: the sample sheet needs a 'sample' column")
    return sheet


def report_table(
    store: str, sheet: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per sample, depth profiles of every sample)."""
    root = open_store(store)
    rows, profiles = [], []
    for sample in samples(root):
        layers = sample_layers(store, sample)
        unexplained = read_phase_fit(root, sample)["unexplained"][:]
        row = layers.summary() | {
            "points": int(np.isfinite(unexplained).sum()),
            "unexplained_points": int((unexplained > 0).sum()),
        }
        rows.append(row)
        profiles.append(layers.profile.assign(sample=sample))
    table = pd.DataFrame(rows)
    if sheet is not None:
        table = sheet.merge(table, on="sample", how="right")
    return table, pd.concat(profiles, ignore_index=True)


def _tick(row: pd.Series) -> str:
    """The sample's name over what the sample sheet says (environment or condition,
    exposure), one item per line."""
    lines = [row["sample"]]
    for column in ("environment", "condition"):
        if column in row and pd.notna(row[column]):
            lines.append(str(row[column]))
            break
    if "exposure_years" in row and pd.notna(row["exposure_years"]):
        lines.append(f"{row['exposure_years']:g} y")
    return "\n".join(lines)


def report_figure(table: pd.DataFrame, title: str) -> Figure:
    """Thickness, rust composition and alpha/gamma* of every sample, one column each."""
    x = np.arange(len(table))
    ticks = [_tick(row) for _, row in table.iterrows()]
    fig = Figure(figsize=(max(8.0, 0.75 * len(table) + 3), 10), layout="constrained")
    ax_t, ax_c, ax_i = fig.subplots(3, 1, sharex=True)
    mean = table["thickness_um_mean"]
    ax_t.bar(x, mean, color="#8c8c8c", label="mean")
    ax_t.errorbar(x, mean, yerr=table["thickness_um_sd"], fmt="none", ecolor="black", capsize=3)
    ax_t.scatter(x, table["thickness_um_min"], marker="v", color="#3d7ab8", label="min", zorder=3)
    ax_t.scatter(x, table["thickness_um_max"], marker="^", color="#c9302c", label="max", zorder=3)
    ax_t.bar(x, table["inner_um_mean"], width=0.4, color="#e08a2c", label="inner layer (mean)")
    ax_t.set_ylabel("rust thickness (um)")
    ax_t.legend(fontsize=8, ncols=4, loc="upper left")
    ax_t.set_title("Rust layer: thickness per map column (bar: mean, whisker: 1 sd)", fontsize=10)

    bottom = np.zeros(len(table))
    for phase, colour in RUST_COLOURS.items():
        column = f"wt_{phase}"
        if column not in table:
            continue
        share = table[column].fillna(0).to_numpy()
        ax_c.bar(x, share, bottom=bottom, color=colour, label=FORMULA[phase])
        bottom += share
    ax_c.set_ylim(0, 1)
    ax_c.set_ylabel("weight fraction (mean over the rust)")
    ax_c.legend(fontsize=8, ncols=6, loc="upper left", bbox_to_anchor=(0, -0.02))
    ax_c.set_title(
        "Rust composition (cementite and unquantified steel phases left out)", fontsize=10
    )

    ax_i.errorbar(
        x,
        table["alpha_gamma_star"],
        yerr=table["alpha_gamma_star_sigma"],
        fmt="o",
        color="black",
        capsize=3,
        label="alpha/gamma* (whole rust)",
    )
    ax_i.scatter(
        x, table["alpha_gamma_star_inner"], marker="s", color="#e08a2c", label="inner layer"
    )
    ax_i.scatter(
        x, table["alpha_gamma_star_outer"], marker="D", color="#c9302c", label="outer layer"
    )
    ax_i.axhline(1.0, color="#2a9d8f", lw=1, ls="--")
    ax_i.text(x[-1] + 0.4, 1.02, "protective above 1", color="#2a9d8f", fontsize=8, ha="right")
    ax_i.set_ylabel("alpha/gamma* (by mass)")
    ax_i.set_yscale("log")
    values = table[["alpha_gamma_star", "alpha_gamma_star_inner", "alpha_gamma_star_outer"]]
    finite = values.to_numpy(dtype=float)[np.isfinite(values.to_numpy(dtype=float))]
    if finite.size:
        ax_i.set_ylim(min(finite.min(), 1.0) / 1.5, max(finite.max(), 1.0) * 1.5)
    ax_i.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # Minor ticks numbered at 2, 3 and 5 of each decade only: 0.9 next to 1 overlaps it.
    ax_i.yaxis.set_minor_formatter(
        FuncFormatter(
            lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in (2, 3, 5) else ""
        )
    )
    ax_i.legend(fontsize=8, loc="upper left")
    ax_i.set_title(
        "Protective ability index alpha-FeOOH / (gamma-FeOOH + beta-FeOOH + Fe3O4)", fontsize=10
    )
    ax_i.set_xticks(x, ticks, fontsize=7)
    fig.suptitle(title)
    return fig


def write_report(
    store: str, sheet: pd.DataFrame | None = None, out_dir: Path | None = None
) -> list[Path]:
    """``report.csv``, ``profiles.csv`` and ``report.png`` of every sample of ``store``."""
    out = out_dir or report_dir(store)
    out.mkdir(parents=True, exist_ok=True)
    table, profiles = report_table(store, sheet)
    paths = [out / "report.csv", out / "profiles.csv", out / "report.png"]
    name = str(store).rstrip("/").split("/")[-1]
    with written_whole(paths[0]) as part:
        table.round(4).to_csv(part, index=False)
    with written_whole(paths[1]) as part:
        profiles.round(4).to_csv(part, index=False)
    with written_whole(paths[2]) as part:
        report_figure(table, f"{name}: {len(table)} samples").savefig(part, dpi=110)
    return paths
