"""The ``xrdmap`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from models.strategies import BENCHMARK_STRATEGIES, DEFAULT_QUERY_STRATEGY, QUERY_STRATEGIES
from xrdmap import __version__
from xrdmap.config import CONF_DIR, ConfigError, ProcessConfig


@contextmanager
def _prefect(verbose: bool) -> Iterator[None]:
    """Quiet terminal defaults set before Prefect configures its logging, and the API
    (a configured server, or one temporary local server) for the flows run inside."""
    from flows.runtime import prefect_api, quiet_defaults

    console_level = "INFO" if verbose else "WARNING"
    quiet_defaults(console_level=console_level)
    with prefect_api(console_level=console_level):
        yield


def _print_metrics(metrics: dict[str, dict]) -> None:
    print(f"{'class':18} {'accuracy':>9} {'precision':>9} {'recall':>9} {'F1':>6}   TP  FP  FN  TN")
    for name, m in metrics.items():
        print(
            f"{name:18} {m['accuracy']:9.3f} {m['precision']:9.3f} {m['recall']:9.3f} "
            f"{m['f1']:6.3f} {m['tp']:4d}{m['fp']:4d}{m['fn']:4d}{m['tn']:4d}"
        )


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

    with _prefect(args.verbose):
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


def _store_sample_sizes(store: str) -> dict[str, int]:
    from xrdmap.store import sample_sizes

    return sample_sizes(store)


def _cmd_draw_labels(args: argparse.Namespace) -> int:
    from xrdmap.simulate.expert import draw_expert_labels

    sizes = _store_sample_sizes(str(args.store))
    labels = draw_expert_labels(args.truth_dir, list(sizes), args.n, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)
    print(f"Wrote {len(labels)} labels drawn from {args.truth_dir} to {args.out}")
    return 0


def _labels_of(store: str, path: Path | None):
    """The labels CSV ``path`` if given (checked), else the labels stored in ``store``."""
    from xrdmap.label_store import stored_labels
    from xrdmap.labels import LabelsError, read_labels_csv

    sizes = _store_sample_sizes(store)
    if path is not None:
        return read_labels_csv(path, sizes)
    labels = stored_labels(store)
    if labels.empty:
        raise LabelsError(f"{store}: no labels stored yet (xrdmap labels import STORE FILE)")
    return labels


def _cmd_labels_import(args: argparse.Namespace) -> int:
    from xrdmap.label_store import import_labels
    from xrdmap.labels import read_labels_csv

    store = str(args.store)
    table = read_labels_csv(args.file, _store_sample_sizes(store))
    if args.labeler:
        table["labeler"] = args.labeler
    report = import_labels(store, table, origin=str(args.file))
    done = f"batch {report.batch}" if report.batch else "nothing new"
    print(
        f"Imported {report.added} labels from {args.file} into {store} ({done}; "
        f"{report.already_stored} already stored; {report.total} labels in all)."
    )
    return 0


def _cmd_labels_export(args: argparse.Namespace) -> int:
    labels = _labels_of(str(args.store), None).drop(columns="batch")  # the import format
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)
    print(f"Wrote {len(labels)} stored labels of {args.store} to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from xrdmap.config import load_phases, load_train

    cfg = load_train((args.conf or CONF_DIR) / "train.yaml")
    phases = load_phases((args.conf or CONF_DIR) / "phases.yaml")
    updates = {
        k: v for k, v in (("registry_dir", args.registry), ("seed", args.seed)) if v is not None
    }
    cfg = cfg.model_copy(update=updates)
    store = str(args.store)
    labels = _labels_of(store, args.labels)
    from models.train import train_version

    version, card = train_version(store, labels, cfg, phases)
    split = card["split"]
    print(
        f"Trained model {version} in {cfg.registry_dir} on {len(split['train'])} labels "
        f"(validation {len(split['validation'])}, test {len(split['test'])}; "
        f"{card['epochs_trained']} epochs)."
    )
    if card["test_metrics"]:
        _print_metrics(card["test_metrics"])
    return 0


def _registry(args: argparse.Namespace) -> str:
    from xrdmap.config import load_train

    return args.registry or load_train((args.conf or CONF_DIR) / "train.yaml").registry_dir


def _cmd_predict(args: argparse.Namespace) -> int:
    from xrdmap.config import load_process

    store = str(args.store)
    _store_sample_sizes(store)
    registry = _registry(args)
    from models.registry import latest_version, load_version

    version = args.model or latest_version(registry)
    load_version(registry, version)  # a missing or corrupt version stops here
    dask = load_process((args.conf or CONF_DIR) / "process.yaml").dask

    with _prefect(args.verbose):
        from flows.predict import run_predict_store

        summary = run_predict_store(
            store, registry, dask, version=version, maps_dir=str(args.maps) if args.maps else None
        )
    print(
        f"Predicted {summary.n_points} patterns with model {summary.version} in "
        f"{summary.seconds:.1f} s (model calls {summary.model_seconds:.2f} s); "
        f"confidences in {store}/<sample>/confidence/{summary.version}."
    )
    print("Maps:")
    for path in summary.maps:
        print(f"  {path}")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    import zarr

    from xrdmap.config import load_phases

    store = str(args.store)
    _store_sample_sizes(store)
    if args.n < 1:
        raise ConfigError("--n: ask for at least one point")
    phases = load_phases((args.conf or CONF_DIR) / "phases.yaml")
    if args.model:
        from xrdmap.store import StoreError

        root = zarr.open_group(store, mode="r")
        first = root[root.attrs["xrdmap"]["samples"][0]]
        if "confidence" not in first or args.model not in first["confidence"]:
            raise StoreError(f"{store}: no confidences of model {args.model} (run xrdmap "
                             f"predict {store} --model {args.model})")  # fmt: skip
    with _prefect(args.verbose):
        from flows.active_learning import query_relabel

        path, version = query_relabel(store, args.n, phases, args.strategy, args.score, args.model,
                                      str(args.out) if args.out else None, args.seed)  # fmt: skip
    basis = f"confidences of model {version}" if version else "a cold start (no model yet)"
    print(f"Queued {args.n} points for relabeling from {basis}: {path}")
    print("Fill in the class columns (0/1) and import with: "
          f"xrdmap labels import {store} {path}")  # fmt: skip
    return 0


def _cmd_al_rounds(args: argparse.Namespace) -> int:
    from xrdmap.config import load_process

    store = str(args.store)
    _store_sample_sizes(store)
    registry = _registry(args)
    workers = load_process((args.conf or CONF_DIR) / "process.yaml").dask.n_workers
    print(f"Active learning on {store}: {args.rounds} round(s) of {args.n} points. Each round "
          f"waits for labels: `xrdmap label-ui {store}` or `xrdmap labels import {store} "
          "QUEUE_CSV`.", flush=True)  # fmt: skip
    with _prefect(args.verbose):
        from flows.active_learning import active_learning

        records = active_learning(
            store, registry, rounds=args.rounds, n=args.n, strategy=args.strategy,
            conf_dir=str(args.conf) if args.conf else None, min_labels=args.min_labels,
            poll_s=args.poll_s, timeout_s=args.timeout_h * 3600, n_workers=workers or 2,
        )  # fmt: skip
    for r in records:
        acc = f"{r.test_mean_accuracy:.3f}" if r.test_mean_accuracy is not None else "n/a"
        print(f"round {r.round}: {r.labels} labels -> model {r.model}, test mean accuracy "
              f"{acc}, unsure share {r.unsure_share:.3f}")  # fmt: skip
    return 0


def _cmd_label_ui(args: argparse.Namespace) -> int:
    from xrdmap.labels import LabelsError
    from xrdmap.relabel_queue import QUEUE_FILE
    from xrdmap.store import beside_store

    store = str(args.store)
    _store_sample_sizes(store)
    queue = args.queue
    if queue is None:
        queues = sorted(beside_store(store, "-queue").glob(f"*/{QUEUE_FILE}"),
                        key=lambda p: p.stat().st_mtime)  # fmt: skip
        if not queues:
            raise LabelsError(f"{store}: no relabel queue yet (run xrdmap query {store})")
        queue = queues[-1].parent
    if not (queue / QUEUE_FILE).is_file():
        raise LabelsError(f"{queue}: no {QUEUE_FILE} here (a folder written by xrdmap query)")
    import uvicorn

    from xrdmap.label_ui import create_app

    app = create_app(store, queue, labeler=args.labeler or "")
    print(f"Labeling {queue / QUEUE_FILE} at http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import zarr

    from xrdmap.classes import CLASS_NAMES
    from xrdmap.store import StoreError

    store = str(args.store)
    labels = _labels_of(store, args.labels)
    root = zarr.open_group(store, mode="r")
    from models.predict import latest_predicted

    version = args.model or latest_predicted(store)
    if not version:
        raise StoreError(f"{store}: no predictions yet (run xrdmap predict)")
    conf = []
    for sample, point in zip(labels["sample"], labels["point"], strict=True):
        group = root[sample]
        if "confidence" not in group or version not in group["confidence"]:
            raise StoreError(f"{store}: no confidences of model {version} (run xrdmap predict)")
        conf.append(group["confidence"][version][point])
    from models.train import class_metrics

    metrics = class_metrics(labels[list(CLASS_NAMES)].to_numpy(), np.array(conf))
    source = args.labels or f"{store} (stored labels)"
    print(f"Model {version} on {len(labels)} labeled points of {source}:")
    _print_metrics(metrics)
    return 0


def _cmd_al_benchmark(args: argparse.Namespace) -> int:
    from xrdmap.config import load_phases, load_train

    conf = args.conf or CONF_DIR
    cfg, phases = load_train(conf / "train.yaml"), load_phases(conf / "phases.yaml")
    budgets = sorted(args.budgets)
    if len(budgets) < 2 or budgets[0] < 5:
        raise ConfigError("--budgets: give at least two label counts, the first >= 5")
    args.strategies = args.strategies or list(BENCHMARK_STRATEGIES)
    if "random" not in args.strategies or not set(args.strategies) <= set(BENCHMARK_STRATEGIES):
        raise ConfigError(
            f"--strategies: choose among {','.join(BENCHMARK_STRATEGIES)}, random included"
        )
    from models.al_benchmark import labels_to_reach, plot_curves, run_al_benchmark, summarize

    results = run_al_benchmark(str(args.store), str(args.truth_dir), cfg, phases,
                               seeds=args.seeds, budgets=budgets,
                               strategies=args.strategies)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "results.csv", index=False)
    summary = summarize(results)
    summary.to_csv(args.out / "summary.csv", index=False)
    plot_curves(results, str(args.out / "curves.png"))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    target = summary[(summary["strategy"] == "random") & (summary["labels"] == budgets[-1])]
    reference = float(target["mean"].iloc[0])
    print(f"Random selection with {budgets[-1]} labels: mean accuracy {reference:.4f}.")
    for strategy in (s for s in args.strategies if s != "random"):
        n = labels_to_reach(results, strategy, reference)
        reached = f"reaches it with {n} labels" if n else "does not reach it"
        print(f"  {strategy}: {reached}")
    print(f"Wrote {args.out}/results.csv, summary.csv and curves.png")
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

    lab = sub.add_parser(
        "labels",
        help="the labels table stored with the beamtime: import, export",
        description=(
            "Expert labels live in the store, append-only, with labeler, time, source and "
            "the model version that queried them. CSV format: see README 'Labels'."
        ),
    )
    lab_sub = lab.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    imp = lab_sub.add_parser(
        "import",
        help="check a labels CSV and append it to the store's labels",
        description=(
            "Check FILE completely (unknown sample or point, unknown class column, "
            "values other than 0/1, a point labeled twice with different answers, a "
            "point already stored with other answers) and append it as one batch; "
            "nothing is written when any check fails."
        ),
    )
    imp.add_argument("store", type=Path, metavar="STORE")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--labeler", default=None, help="who labeled (overrides the file's)")
    imp.set_defaults(func=_cmd_labels_import)
    exp = lab_sub.add_parser("export", help="write the stored labels as CSV")
    exp.add_argument("store", type=Path, metavar="STORE")
    exp.add_argument("--out", type=Path, required=True, help="CSV to write")
    exp.set_defaults(func=_cmd_labels_export)

    train = sub.add_parser(
        "train",
        help="train a new classifier version from labeled points of a store",
        description=(
            "Split the labels (default 81/29/29 of 139, like the reference paper), "
            "pre-train the dense network on patterns synthesized from the phases' CIFs, "
            "fine-tune it on the train split (the validation loss is recorded), score the "
            "test split, and write a new version (.keras + model card) to the registry."
        ),
    )
    train.add_argument("store", type=Path, metavar="STORE")
    train.add_argument(
        "--labels", type=Path, default=None,
        help="train on this labels CSV instead of the labels stored in STORE",
    )  # fmt: skip
    train.add_argument("--registry", default=None, help="model registry folder")
    train.add_argument("--seed", type=int, default=None)
    train.set_defaults(func=_cmd_train)

    pred = sub.add_parser(
        "predict",
        help="classify every pattern of a store with a model version, then draw the maps",
        description=(
            "A Prefect flow over Dask-parallel chunks writes <sample>/confidence/<version> "
            "(n, 9) for every sample (earlier versions stay), then per-class confidence "
            "maps, phase maps of the corrosion products and an overview as PNG and as "
            "Prefect artifacts."
        ),
    )
    pred.add_argument("store", type=Path, metavar="STORE")
    pred.add_argument("--model", default=None, help="model version (default: the latest)")
    pred.add_argument("--registry", default=None, help="model registry folder")
    pred.add_argument("--maps", type=Path, default=None, help="folder for the PNG maps")
    pred.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    pred.set_defaults(func=_cmd_predict)

    ev = sub.add_parser(
        "evaluate",
        help="per-class accuracy, precision, recall, F1 of stored predictions against labels",
    )
    ev.add_argument("store", type=Path, metavar="STORE")
    ev.add_argument(
        "--labels", type=Path, default=None,
        help="labels CSV (default: the labels stored in STORE)",
    )  # fmt: skip
    ev.add_argument("--model", default=None, help="model version (default: the latest)")
    ev.set_defaults(func=_cmd_evaluate)

    qry = sub.add_parser(
        "query",
        help="queue the points an expert should label next (CSV + pictures)",
        description=(
            "A Prefect flow (query-relabel): picks N unlabeled points where the model is "
            "unsure (by default in turns over the classes, each taking its point closest "
            "to 0.5; a Gaussian-mixture cold start when no model has predicted yet), "
            "writes <store>-queue/<version>/queue.csv with a picture per point, and "
            "publishes the queue as a Prefect artifact."
        ),
    )
    qry.add_argument("store", type=Path, metavar="STORE")
    qry.add_argument("--n", type=int, default=20, help="points to queue (default 20)")
    qry.add_argument("--strategy", choices=QUERY_STRATEGIES, default=DEFAULT_QUERY_STRATEGY,
                     help=f"how to pick the points (default {DEFAULT_QUERY_STRATEGY})")  # fmt: skip
    qry.add_argument("--score", choices=("least_confidence", "margin", "entropy"),
                     default="least_confidence",
                     help="uncertainty score of the hybrid, diverse and uncertainty strategies "
                          "(default least_confidence)")  # fmt: skip
    qry.add_argument("--model", default=None, help="model version (default: the latest)")
    qry.add_argument("--out", type=Path, default=None, help="queue folder (must be new)")
    qry.add_argument("--seed", type=int, default=0)
    qry.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    qry.set_defaults(func=_cmd_query)

    rnd = sub.add_parser(
        "al-rounds",
        help="active-learning rounds: query, wait for labels, retrain, re-predict, maps",
        description=(
            "The Prefect flow active-learning: each round queues N points, waits until "
            "they are labeled (label-ui or labels import, from another shell), trains a "
            "new model version on every stored label, predicts the store and draws the "
            "maps. Rounds are recorded in STORE-queue/rounds.csv; re-running resumes."
        ),
    )
    rnd.add_argument("store", type=Path, metavar="STORE")
    rnd.add_argument("--rounds", type=int, default=1)
    rnd.add_argument("--n", type=int, default=20, help="points per round (default 20)")
    rnd.add_argument("--strategy", choices=QUERY_STRATEGIES, default=DEFAULT_QUERY_STRATEGY)
    rnd.add_argument(
        "--min-labels", type=int, default=None,
        help="go on once this many queued points are labeled (default all)",
    )  # fmt: skip
    rnd.add_argument("--poll-s", type=float, default=10.0, help="seconds between checks")
    rnd.add_argument("--timeout-h", type=float, default=168.0, help="hours to wait per round")
    rnd.add_argument("--registry", default=None, help="model registry folder")
    rnd.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    rnd.set_defaults(func=_cmd_al_rounds)

    ui = sub.add_parser(
        "label-ui",
        help="label a relabel queue in a local web page",
        description=(
            "Serve a page with each queued point's picture and one checkbox per class; "
            "every saved point is checked and appended to the store's labels."
        ),
    )
    ui.add_argument("store", type=Path, metavar="STORE")
    ui.add_argument("--queue", type=Path, default=None,
                    help="queue folder (default: the newest under STORE-queue)")  # fmt: skip
    ui.add_argument("--labeler", default=None, help="name filled in on the page")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=8765)
    ui.set_defaults(func=_cmd_label_ui)

    alb = sub.add_parser(
        "al-benchmark",
        help="(development) simulated-oracle experiment: active vs random selection",
        description=(
            "The simulator's ground truth answers the queries: accuracy against number "
            "of labels for random, uncertainty-only and diverse selection, over several "
            "seeds; writes results.csv, summary.csv and curves.png."
        ),
    )
    alb.add_argument("store", type=Path, metavar="STORE")
    alb.add_argument("truth_dir", type=Path, metavar="TRUTH_DIR")
    alb.add_argument("--seeds", type=int, default=5)
    alb.add_argument(
        "--budgets", type=lambda t: [int(v) for v in t.split(",")],
        default=[20, 40, 70, 139], help="label counts, comma-separated (default 20,40,70,139)",
    )  # fmt: skip
    alb.add_argument(
        "--strategies", type=lambda t: t.split(","), default=None,
        help=f"comma-separated, among {','.join(BENCHMARK_STRATEGIES)} (default all; random "
             "is needed)",
    )  # fmt: skip
    alb.add_argument("--out", type=Path, required=True, help="folder for results and plot")
    alb.set_defaults(func=_cmd_al_benchmark)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from models.registry import RegistryError
    from xrdmap.discovery import BeamtimeError
    from xrdmap.integrate import GeometryError
    from xrdmap.labels import LabelsError
    from xrdmap.simulate.beamtime import SimulationError
    from xrdmap.store import StoreError

    known = (
        ConfigError,
        SimulationError,
        BeamtimeError,
        GeometryError,
        StoreError,
        LabelsError,
        RegistryError,
    )
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
