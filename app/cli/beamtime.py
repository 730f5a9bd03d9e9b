"""Beamtime commands: ``simulate`` a beamtime, ``process`` one into a Zarr store."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from app.cli.common import add_verbose, prefect_session
from xrdmap.config import ProcessConfig, conf_file, load_process


def simulate(args: argparse.Namespace) -> int:
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


def process_settings(args: argparse.Namespace) -> ProcessConfig:
    """``process.yaml`` with the command line's chunk size, scheduler and workers."""
    cfg = load_process(conf_file(args.conf, "process.yaml"))
    updates: dict = {}
    if args.chunk_frames:
        updates["chunk_frames"] = args.chunk_frames
        updates["frames_chunk_frames"] = math.gcd(args.chunk_frames, cfg.frames_chunk_frames)
    dask = cfg.dask.model_copy(
        update={k: v for k, v in (("address", args.scheduler), ("n_workers", args.workers)) if v}
    )
    return ProcessConfig.model_validate({**cfg.model_dump(), **updates, "dask": dask.model_dump()})


def process(args: argparse.Namespace) -> int:
    from xrdmap.plan import preflight

    cfg = process_settings(args)
    store = str(args.store)
    # Bad input fails here, in a second, before Prefect starts; the flow's plan task
    # reuses this inspection (same process, inputs unchanged).
    preflight(str(args.beamtime_dir), store, cfg)
    with prefect_session(args.verbose):
        from flows.process_beamtime import run_process_beamtime

        summary = run_process_beamtime(
            str(args.beamtime_dir), store, cfg, progress_bar=not args.quiet
        )
    if summary.chunks_processed == 0:
        print(f"Nothing to do: {store} already holds all {summary.frames} frames.")
    else:
        print(
            f"Processed {summary.frames_processed} frames ({summary.chunks_processed} chunks) "
            f"into {store} in {summary.seconds:.1f} s ({summary.frames_per_second:.0f} frames/s); "
            f"{summary.chunks_skipped} chunks were already done."
        )
    if summary.quarantined:
        print(f"Quarantined {len(summary.quarantined)} frames (NaN patterns, status != 0):")
        for sample, point, code, reason in summary.quarantined:
            print(f"  {sample} point {point} (status {code}): {reason}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    sim.set_defaults(func=simulate)

    proc = sub.add_parser(
        "process",
        help="ingest and integrate a beamtime into a Zarr store (a Prefect flow on Dask)",
        description=(
            "Read every frame of a beamtime (CBF or NeXus/HDF5), write the frames and "
            "their pyFAI-integrated patterns into one Zarr v3 store. Resumable: chunks "
            "already in the store are not redone. Unusable frames are quarantined."
        ),
    )
    proc.add_argument("beamtime_dir", type=Path, metavar="BEAMTIME_DIR")
    proc.add_argument("--store", type=Path, required=True, help="the Zarr store to write")
    proc.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    proc.add_argument("--workers", type=int, default=None, help="local Dask worker processes")
    proc.add_argument("--chunk-frames", type=int, default=None, help="frames per task")
    add_verbose(proc)
    proc.add_argument("--quiet", action="store_true", help="no progress bar")
    proc.set_defaults(func=process)
