"""Phase commands: ``fit`` a store's patterns with the known phases, ``report`` the
numbers of every sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_verbose, make_folder, prefect_session
from xrdmap.config import conf_file, load_phases, load_process


def fit(args: argparse.Namespace) -> int:
    from xrdmap.store import PHASE_FIT_MAPS, maps_dir, sample_sizes

    store = str(args.store)
    sample_sizes(store)  # not a store: one line, before anything starts
    phases = load_phases(conf_file(args.conf, "phases.yaml"))
    dask = load_process(conf_file(args.conf, "process.yaml")).dask
    with prefect_session(args.verbose, "flows.phase_fit"):
        from flows.phase_fit import run_fit_phases

        fits = run_fit_phases(store, dask, phases)
    n = sum(f.n_points for f in fits)
    print(
        f"Fitted {n} patterns with {len(phases.phases)} known phases; weight fractions in "
        f"{store}/samples/<sample>/phase_fit, maps in {maps_dir(store, PHASE_FIT_MAPS)}."
    )
    print("Points with a line no known phase explains, per sample (strongest lines: 2theta, d):")
    for f in fits:
        lines = ", ".join(
            f"{line.tth_deg:.2f} deg / {line.d_a:.3f} A at {line.n_points}" for line in f.lines[:3]
        )
        share = f.n_unexplained / max(f.n_points, 1)
        print(f"  {f.sample:24} {f.n_unexplained:7d} of {f.n_points:7d} ({share:.1%})  {lines}")
    return 0


def report(args: argparse.Namespace) -> int:
    from xrdmap.beamtime_report import read_sample_sheet
    from xrdmap.errors import StoreError
    from xrdmap.store import PHASE_FIT, open_store, report_dir, sample_group, sample_sizes, samples

    store = str(args.store)
    sample_sizes(store)
    root = open_store(store)
    unfitted = [s for s in samples(root) if PHASE_FIT not in sample_group(root, s)]
    if unfitted:
        raise StoreError(
            f"{store}: no phase fit for {', '.join(unfitted)} (run xrdmap fit {store} first)"
        )
    if args.sample_sheet:
        read_sample_sheet(args.sample_sheet)  # a bad sheet: one line, before the flow
    if args.out:
        make_folder(args.out, "--out")
    with prefect_session(args.verbose, "flows.beamtime_report"):
        from flows.beamtime_report import beamtime_report

        paths = beamtime_report(
            store,
            str(args.sample_sheet) if args.sample_sheet else None,
            str(args.out) if args.out else None,
        )
    import pandas as pd

    table = pd.read_csv(paths[0])
    print(f"Report of {len(table)} samples in {args.out or report_dir(store)}:")
    print(
        f"{'sample':16} {'thickness um':>16} {'inner um':>9} {'porosity':>9} "
        f"{'alpha/gamma':>11} {'alpha/gamma*':>16}"
    )
    for _, row in table.iterrows():
        print(
            f"{row['sample']:16} {row['thickness_um_mean']:8.1f} +- {row['thickness_um_sd']:4.1f} "
            f"{row['inner_um_mean']:9.1f} {row['porosity']:9.2f} {row['alpha_gamma']:11.2f} "
            f"{row['alpha_gamma_star']:8.2f} +- {row['alpha_gamma_star_sigma']:4.2f}"
        )
    for path in paths:
        print(f"  {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    ft = sub.add_parser(
        "fit",
        help="phase weight fractions and unexplained lines at every point of a store",
        description=(
            "Fit every pattern as a non-negative sum of the known phases' profiles "
            "(intensities from their CIFs, line shapes refined per sample), the epoxy halo "
            "and a smooth background. Stores weight and volume fractions with their "
            "uncertainties per point (samples/<sample>/phase_fit), draws fraction maps, and "
            "reports the lines no known phase explains (a phase no model knows)."
        ),
    )
    ft.add_argument("store", metavar="STORE")
    add_verbose(ft)
    ft.set_defaults(func=fit)

    rp = sub.add_parser(
        "report",
        help="per-sample rust thickness, layers, composition and alpha/gamma* (after fit)",
        description=(
            "From the phase fit (xrdmap fit): per sample the rust thickness per map column "
            "(mean, spread, min, max), the inner layer, porosity, mean weight fractions of "
            "the rust phases, alpha/gamma and the protective ability index alpha/gamma* = "
            "alpha-FeOOH / (gamma-FeOOH + beta-FeOOH + Fe3O4) by mass with its spread over "
            "columns; report.csv, profiles.csv (fractions vs distance from the interface) "
            "and report.png beside the store, and Prefect artifacts."
        ),
    )
    rp.add_argument("store", metavar="STORE")
    rp.add_argument(
        "--sample-sheet",
        type=Path,
        default=None,
        metavar="CSV",
        help="CSV with a 'sample' column (condition, exposure_years...) joined into the table",
    )
    rp.add_argument("--out", type=Path, default=None, help="folder (default: STORE-report)")
    add_verbose(rp)
    rp.set_defaults(func=report)
