"""Beamtime commands: ``simulate`` a beamtime, ``describe`` raw data, ``init`` its
manifest, ``process`` a beamtime into a Zarr store."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from shlex import quote

from app.cli.common import add_verbose, make_folder, positive, prefect_session
from xrdmap.config import ProcessConfig, conf_file, load_process


def simulate(args: argparse.Namespace) -> int:
    from xrdmap.simulate.beamtime import simulate_beamtime

    result = simulate_beamtime(
        args.out_dir,
        preset=args.preset,
        seed=args.seed,
        layout=args.layout,
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


#: Quarantined frames listed one by one after a run.
SHOWN = 20


def describe(args: argparse.Namespace) -> int:
    from xrdmap.discovery import discover_beamtime
    from xrdmap.survey import beamtime_lines, summary_lines, survey

    path: Path = args.path
    described = path.suffix in (".yaml", ".yml") or (path / "beamtime.json").is_file()
    if described:  # a manifest or the folder layout: what process will read
        print("\n".join(beamtime_lines(discover_beamtime(path, require_complete=False))))
    else:
        print("\n".join(summary_lines(survey(path))))
    return 0


def _pair(text: str, kind: type = float, sep: str = ",") -> tuple:
    """``"5"`` -> (5, 5); ``"5,2"`` -> (5, 2)."""
    try:
        values = [kind(v) for v in text.lower().split(sep)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or N{sep}M") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two positive numbers N{sep}M")
    return tuple(values)


def init(args: argparse.Namespace) -> int:
    from xrdmap.manifest_draft import DraftOptions, draft_manifest, write_manifest
    from xrdmap.survey import survey

    found = survey(args.path)
    out = args.out or Path(f"{found.root.name}.yaml")
    columns = (args.x, args.y) if args.x or args.y else None
    if columns and not all(columns):
        raise ValueError("--x and --y go together")
    options = DraftOptions(
        poni=args.poni,
        geometry_from_header=args.geometry_from_header,
        mask=args.mask,
        samples=tuple(args.sample or ()),
        steps=args.steps,
        step_um=args.step_um,
        snake=args.snake,
        positions_csv=args.positions_csv,
        columns=columns,
        unit=args.unit,
        pixel_size_um=args.pixel_size_um,
        orientation=args.orientation,
        count_cutoff=args.count_cutoff,
    )
    draft = draft_manifest(found, out, options)
    write_manifest(draft, out, raw=found.root, force=args.force)
    for warning in draft.warnings:
        print(f"warning: {warning}")
    n = len(draft.manifest["samples"])
    print(
        f"Wrote {out}: {n} sample{'s' if n != 1 else ''} of {found.root}.\n"
        f"Next: xrdmap process {quote(str(out))} --store {quote(out.with_suffix('.zarr').name)}"
    )
    return 0


def process_settings(args: argparse.Namespace) -> ProcessConfig:
    """``process.yaml`` with the command line's chunk size, scheduler, workers and
    integration device."""
    cfg = load_process(conf_file(args.conf, "process.yaml"))
    updates: dict = {}
    if args.chunk_frames:
        updates["chunk_frames"] = args.chunk_frames
        updates["frames_chunk_frames"] = math.gcd(args.chunk_frames, cfg.frames_chunk_frames)
    if args.device:
        updates["integration"] = {**cfg.integration.model_dump(), "device": args.device}
    dask = cfg.dask.model_copy(
        update={k: v for k, v in (("address", args.scheduler), ("n_workers", args.workers)) if v}
    )
    return ProcessConfig.model_validate({**cfg.model_dump(), **updates, "dask": dask.model_dump()})


def _nothing_to_do(store: str, frames: int) -> str:
    return f"Nothing to do: {store} already holds all {frames} frames."


def process(args: argparse.Namespace) -> int:
    from xrdmap.plan import nothing_to_do, preflight

    cfg = process_settings(args)
    store = str(args.store)
    # Bad input fails here, in a second, before Prefect starts; the flow's plan task
    # reuses this inspection (same process, inputs unchanged).
    inspection = preflight(str(args.beamtime_dir), store, cfg)
    if not args.retry_quarantined and nothing_to_do(store, inspection, cfg):
        print(_nothing_to_do(store, sum(s.n_points for s in inspection.beamtime.samples)))
        return 0
    if cfg.integration.device == "cuda":  # a GPU here, or a worker declaring one
        from flows.runtime import require_gpu_workers

        require_gpu_workers(cfg.dask)
    with prefect_session(args.verbose, "flows.process_beamtime"):
        from flows.process_beamtime import run_process_beamtime

        summary = run_process_beamtime(
            str(args.beamtime_dir),
            store,
            cfg,
            progress_bar=not args.quiet,
            retry_quarantined=args.retry_quarantined,
        )
    if summary.chunks_processed == 0:
        print(_nothing_to_do(store, summary.frames))
    else:
        print(
            f"Processed {_count(summary.frames_processed, 'frame')} "
            f"({_count(summary.chunks_processed, 'chunk')}) "
            f"into {store} in {summary.seconds:.1f} s ({summary.frames_per_second:.3g} "
            f"frames/s, integrated on {', '.join(summary.integrated_on)}); "
            f"{summary.chunks_skipped} chunks were already done."
        )
    if summary.retried:
        print(f"Read {summary.retried} quarantined frames again: {summary.retried_ok} are ok now.")
    if summary.quarantined:
        print(f"Quarantined {len(summary.quarantined)} frames (NaN patterns, status != 0):")
        for sample, point, code, reason in summary.quarantined[:SHOWN]:
            print(f"  {sample} point {point} (status {code}): {reason}")
        if len(summary.quarantined) > SHOWN:
            print(f"  ... and {len(summary.quarantined) - SHOWN} more (the store's reason array)")
    left = sum(bad for bad, _ in summary.in_store.values())
    if left:
        print(
            f"{left} frames of {store} are quarantined; once their files are restored or "
            f"fixed: xrdmap process {quote(str(args.beamtime_dir))} --store {quote(store)} "
            "--retry-quarantined"
        )
    dead = [s for s, (bad, n) in summary.in_store.items() if bad == n]
    for sample in dead:
        print(f"error: every frame of sample {sample} is quarantined: nothing to map")
    return 1 if dead else 0


def export(args: argparse.Namespace) -> int:
    from xrdmap.export import export_nexus
    from xrdmap.store import sample_sizes

    store = str(args.store)
    sample_sizes(store)  # not a store: one line
    make_folder(args.nexus, "--nexus", parent=True)
    out = export_nexus(store, args.nexus)
    print(f"Wrote {out} ({out.stat().st_size / 1e6:.1f} MB): NXdata per sample (patterns,")
    print("weight fractions and confidences on the (y, x) map grid); open it with silx view.")
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
        "--layout",
        default="cbf",
        choices=["cbf", "hdf5", "nxmx", "bliss", "tiff"],
        help=(
            "cbf: one PILATUS miniCBF per frame; hdf5: one NeXus file per sample (both with "
            "beamtime.json, scan.json, points.csv); nxmx: a DECTRIS master + data files; "
            "bliss: an ESRF BLISS scan over LIMA files; tiff: one TIFF per frame and a "
            "positions.csv (these three: xrdmap init them)"
        ),
    )
    sim.add_argument(
        "--workers", type=positive(int), default=None, help="processes (default: all cores)"
    )
    sim.add_argument("--overwrite", action="store_true", help="replace an earlier simulation")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=simulate)

    desc = sub.add_parser(
        "describe",
        help="say what raw data holds: frames, format, header, positions, what is missing",
        description=(
            "Survey a folder (recursively), a frame file or an HDF5/NeXus file: the frame "
            "sets found (candidate samples), their format, shape, type, compression, "
            "header values, the motors that move with the frames, missing files, and "
            "what `xrdmap init` still needs. Reads headers only; writes nothing."
        ),
    )
    desc.add_argument("path", type=Path, metavar="PATH")
    desc.set_defaults(func=describe)

    ini = sub.add_parser(
        "init",
        help="write the beamtime manifest that `process` reads (raw data untouched)",
        description=(
            "Draft a beamtime manifest from the frame sets `describe` finds, check it as "
            "`process` will read it, and write it outside the raw data folder. "
            "Positions come from the motors that move with the frames (HDF5), a CSV, "
            "or the scan's steps."
        ),
    )
    ini.add_argument("path", type=Path, metavar="PATH", help="raw data folder or file")
    ini.add_argument("--poni", type=Path, metavar="FILE", help="pyFAI geometry (PONI v1, v2, v2.1)")
    ini.add_argument(
        "--geometry-from-header",
        action="store_true",
        help="no PONI: the frame header's beam centre, distance, wavelength (uncalibrated)",
    )
    ini.add_argument(
        "--mask", type=Path, metavar="FILE", help="detector mask image (nonzero = masked)"
    )
    ini.add_argument(
        "--out", type=Path, metavar="FILE", help="the manifest to write (default ./<folder>.yaml)"
    )
    ini.add_argument(
        "--sample", action="append", metavar="NAME", help="only this frame set (repeat for several)"
    )
    ini.add_argument(
        "--steps",
        type=lambda t: _pair(t, int, "x"),
        metavar="ROWSxCOLS",
        help="positions from the scan's steps: rows along y, points along x",
    )
    ini.add_argument("--step-um", type=_pair, metavar="X[,Y]", help="step sizes in um")
    ini.add_argument("--snake", action="store_true", help="every other row runs backwards")
    ini.add_argument(
        "--positions-csv",
        type=Path,
        metavar="FILE",
        help="positions table, one row per frame; {folder} stands for each frame set's folder",
    )
    ini.add_argument(
        "--x", metavar="NAME", help="x column of --positions-csv, or the HDF5 motor for x"
    )
    ini.add_argument(
        "--y", metavar="NAME", help="y column of --positions-csv, or the HDF5 motor for y"
    )
    ini.add_argument("--unit", choices=["um", "mm", "nm"], help="position unit (CSV: um, HDF5: mm)")
    ini.add_argument(
        "--pixel-size-um", type=_pair, metavar="P[,P]", help="when PONI and header lack it"
    )
    ini.add_argument(
        "--orientation",
        type=int,
        choices=[1, 2, 3, 4],
        help="pyFAI image orientation (3: origin at the bottom right, pyFAI's default)",
    )
    ini.add_argument(
        "--count-cutoff", type=int, metavar="N", help="counts at and above are not measured"
    )
    ini.add_argument("--force", action="store_true", help="replace an existing manifest")
    ini.set_defaults(func=init)

    proc = sub.add_parser(
        "process",
        help="ingest and integrate a beamtime into a Zarr store (a Prefect flow on Dask)",
        description=(
            "Read every frame of a beamtime (a manifest from `xrdmap init`, or a folder "
            "with beamtime.json), write the frames and their pyFAI-integrated patterns "
            "into one Zarr v3 store. Resumable: chunks already in the store are not "
            "redone. Unusable frames are quarantined."
        ),
    )
    proc.add_argument(
        "beamtime_dir",
        type=Path,
        metavar="BEAMTIME",
        help="a beamtime manifest (.yaml) or a beamtime folder (beamtime.json)",
    )
    proc.add_argument("--store", required=True, help="the Zarr store to write")
    proc.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    proc.add_argument(
        "--workers", type=positive(int), default=None, help="local Dask worker processes"
    )
    proc.add_argument("--chunk-frames", type=positive(int), default=None, help="frames per task")
    proc.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="where to integrate: auto (a CUDA GPU where CuPy finds one, the CPU where "
        "there is none or it fails), cpu, cuda (only workers declaring a GPU); default: "
        "process.yaml's integration.device",
    )
    proc.add_argument(
        "--retry-quarantined",
        action="store_true",
        help="read the quarantined frames again (restored or fixed files)",
    )
    add_verbose(proc)
    proc.add_argument("--quiet", action="store_true", help="no progress bar")
    proc.set_defaults(func=process)

    exp = sub.add_parser(
        "export",
        help="write a store as NeXus/HDF5 for silx view and PyMca",
        description=(
            "One NXsubentry per sample with NXdata groups on its (y, x) map grid: the "
            "patterns (y, x, 2theta) with their sigma, the phase fit's weight fractions "
            "and unexplained lines, and the latest model's confidences."
        ),
    )
    exp.add_argument("store", metavar="STORE")
    exp.add_argument("--nexus", type=Path, required=True, metavar="OUT.h5")
    exp.set_defaults(func=export)
