"""The ``xrdmap`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from xrdmap import __version__
from xrdmap.config import CONF_DIR, ConfigError, ProcessConfig


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


def _cmd_process(args: argparse.Namespace) -> int:
    from xrdmap.config import load_process
    from xrdmap.plan import preflight

    conf = args.conf or CONF_DIR
    cfg = load_process(conf / "process.yaml")
    updates = {}
    if args.chunk_frames:
        updates["chunk_frames"] = args.chunk_frames
        updates["frames_chunk_frames"] = math.gcd(args.chunk_frames, cfg.frames_chunk_frames)
    dask = cfg.dask.model_copy(
        update={k: v for k, v in (("address", args.scheduler), ("n_workers", args.workers)) if v}
    )
    cfg = ProcessConfig.model_validate({**cfg.model_dump(), **updates, "dask": dask.model_dump()})
    store = str(args.store)
    preflight(str(args.beamtime_dir), store, cfg)  # bad input fails here, before any work

    from flows.runtime import prefect_api, quiet_defaults

    console_level = "INFO" if args.verbose else "WARNING"
    quiet_defaults(console_level=console_level)  # before Prefect configures its logging
    from flows.process_beamtime import run_process_beamtime

    with prefect_api(console_level=console_level):
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


def _store_sample_sizes(store: str) -> dict[str, int]:
    import zarr

    from xrdmap.store import StoreError

    try:
        root = zarr.open_group(store, mode="r")
        samples = root.attrs["xrdmap"]["samples"]
    except (FileNotFoundError, KeyError):
        raise StoreError(f"{store}: not a store written by `xrdmap process`") from None
    return {s: root[s]["patterns"].shape[0] for s in samples}


def _cmd_draw_labels(args: argparse.Namespace) -> int:
    from xrdmap.simulate.expert import draw_expert_labels

    sizes = _store_sample_sizes(str(args.store))
    labels = draw_expert_labels(args.truth_dir, list(sizes), args.n, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)
    print(f"Wrote {len(labels)} labels drawn from {args.truth_dir} to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from xrdmap.config import load_train
    from xrdmap.labels import read_labels_csv

    cfg = load_train((args.conf or CONF_DIR) / "train.yaml")
    updates = {
        k: v for k, v in (("registry_dir", args.registry), ("seed", args.seed)) if v is not None
    }
    cfg = cfg.model_copy(update=updates)
    store = str(args.store)
    labels = read_labels_csv(args.labels, _store_sample_sizes(store))
    from models.train import train_version

    version, card = train_version(store, labels, cfg)
    split = card["split"]
    print(
        f"Trained model {version} in {cfg.registry_dir} on {len(split['train'])} labels "
        f"(validation {len(split['validation'])}, test {len(split['test'])}; "
        f"{card['epochs_trained']} epochs)."
    )
    if card["test_metrics"]:
        print(f"{'class':18} {'accuracy':>9} {'precision':>9} {'recall':>9} {'F1':>6}")
        for name, m in card["test_metrics"].items():
            print(
                f"{name:18} {m['accuracy']:9.3f} {m['precision']:9.3f} "
                f"{m['recall']:9.3f} {m['f1']:6.3f}"
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
    proc.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    proc.add_argument("--quiet", action="store_true", help="no progress bar")
    proc.set_defaults(func=_cmd_process)

    draw = sub.add_parser(
        "draw-labels",
        help="(development) label N random points from a simulated beamtime's ground truth",
        description=(
            "Draw N points at random over the store's samples and label them from the "
            "simulator's ground truth, as an expert would; writes a labels CSV marked "
            "'simulated ground truth'."
        ),
    )
    draw.add_argument("truth_dir", type=Path, metavar="TRUTH_DIR")
    draw.add_argument("--store", type=Path, required=True)
    draw.add_argument("--n", type=int, default=139, help="number of points (default 139)")
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--out", type=Path, required=True, help="labels CSV to write")
    draw.set_defaults(func=_cmd_draw_labels)

    train = sub.add_parser(
        "train",
        help="train a new classifier version from labeled points of a store",
        description=(
            "Split the labels (default 81/29/29 of 139, like the reference paper), train "
            "the dense network with early stopping on the validation split, score the "
            "test split, and write a new version (.keras + model card) to the registry."
        ),
    )
    train.add_argument("store", type=Path, metavar="STORE")
    train.add_argument("--labels", type=Path, required=True, help="labels CSV (see README)")
    train.add_argument("--registry", default=None, help="model registry folder")
    train.add_argument("--seed", type=int, default=None)
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from xrdmap.discovery import BeamtimeError
    from xrdmap.integrate import GeometryError
    from xrdmap.labels import LabelsError
    from xrdmap.simulate.beamtime import SimulationError
    from xrdmap.store import StoreError

    known = (ConfigError, SimulationError, BeamtimeError, GeometryError, StoreError, LabelsError)
    try:
        return args.func(args)
    except known as exc:
        print(f"xrdmap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrdmap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
