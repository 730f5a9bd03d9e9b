"""The ``xrdmap`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from xrdmap import __version__
from xrdmap.config import ConfigError


def _cmd_simulate(args: argparse.Namespace) -> int:
    from xrdmap.simulate.beamtime import simulate_beamtime

    result = simulate_beamtime(
        args.out_dir,
        preset=args.preset,
        seed=args.seed,
        fmt=args.format,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
        conf_dir=args.conf,
    )
    size_gb = result.disk_bytes() / 1e9
    print(
        f"Simulated {result.n_points} frames of {result.n_samples} "
        f"sample{'s' if result.n_samples != 1 else ''} in "
        f"{result.seconds:.1f} s ({size_gb:.2f} GB).\n"
        f"  beamtime:     {result.beamtime_dir}\n"
        f"  ground truth: {result.truth_dir}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrdmap",
        description="Synchrotron XRD mapping beamtimes to phase maps.",
    )
    parser.add_argument("--version", action="version", version=f"xrdmap {__version__}")
    parser.add_argument(
        "--conf",
        type=Path,
        default=None,
        metavar="DIR",
        help="configuration folder (default: the project's conf/)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="write a simulated beamtime (frames, PONI, mask, scan metadata) and its truth",
        description=(
            "Simulate an XRD-mapping beamtime of corroded steel cross-sections as a "
            "PILATUS 100k beamline writes it, with the ground truth beside it in "
            "OUT_DIR/truth (never inside OUT_DIR/beamtime)."
        ),
    )
    sim.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    sim.add_argument(
        "--preset",
        default="demo",
        choices=["demo", "full"],
        help="demo: 2 samples, 5,414 points; full: 15 samples, 114,198 points (default demo)",
    )
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument(
        "--format",
        default="cbf",
        choices=["cbf", "hdf5"],
        help="cbf: one PILATUS miniCBF per frame; hdf5: one NeXus file per sample",
    )
    sim.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sim.add_argument("--overwrite", action="store_true", help="replace an earlier simulation")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from xrdmap.simulate.beamtime import SimulationError

    try:
        return args.func(args)
    except (ConfigError, SimulationError) as exc:
        print(f"xrdmap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrdmap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
