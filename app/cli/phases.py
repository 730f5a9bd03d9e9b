"""Phase commands: ``fit`` a store's patterns with the known phases."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_verbose, prefect_session
from xrdmap.config import conf_file, load_phases, load_process
from xrdmap.store import sample_sizes


def fit(args: argparse.Namespace) -> int:
    from flows.phase_fit import MAPS_FOLDER
    from xrdmap.store import maps_dir

    store = str(args.store)
    sample_sizes(store)  # not a store: one line, before anything starts
    phases = load_phases(conf_file(args.conf, "phases.yaml"))
    dask = load_process(conf_file(args.conf, "process.yaml")).dask
    with prefect_session(args.verbose):
        from flows.phase_fit import run_fit_phases

        fits = run_fit_phases(store, dask, phases)
    n = sum(f.n_points for f in fits)
    print(
        f"Fitted {n} patterns with {len(phases.phases)} known phases; weight fractions in "
        f"{store}/samples/<sample>/phase_fit, maps in {maps_dir(store, MAPS_FOLDER)}."
    )
    print("Points with a line no known phase explains, per sample (strongest lines: 2theta, d):")
    for f in fits:
        lines = ", ".join(
            f"{line.tth_deg:.2f} deg / {line.d_a:.3f} A at {line.n_points}" for line in f.lines[:3]
        )
        share = f.n_unexplained / max(f.n_points, 1)
        print(f"  {f.sample:24} {f.n_unexplained:7d} of {f.n_points:7d} ({share:.1%})  {lines}")
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
    ft.add_argument("store", type=Path, metavar="STORE")
    add_verbose(ft)
    ft.set_defaults(func=fit)
