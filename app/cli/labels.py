"""Label commands: ``labels import|export``, ``label-ui``, ``draw-labels``.

Each command imports what it needs (zarr, pandas): ``xrdmap --help`` and the other
commands do not pay for them."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import positive


def labels_import(args: argparse.Namespace) -> int:
    from xrdmap.label_store import import_labels
    from xrdmap.labels import read_labels_csv
    from xrdmap.store import sample_sizes

    store = str(args.store)
    table = read_labels_csv(args.file, sample_sizes(store))
    if args.labeler:
        table["labeler"] = args.labeler
    report = import_labels(store, table, origin=str(args.file))
    done = f"batch {report.batch}" if report.batch else "nothing new"
    print(
        f"Imported {report.added} labels from {args.file} into {store} ({done}; "
        f"{report.already_stored} already stored; {report.total} labels in all)."
    )
    return 0


def labels_export(args: argparse.Namespace) -> int:
    from xrdmap.label_store import export_labels

    n = export_labels(str(args.store), args.out)
    print(f"Wrote {n} stored labels of {args.store} to {args.out}")
    return 0


def label_ui(args: argparse.Namespace) -> int:
    import uvicorn

    from app.label_page import create_app
    from xrdmap.active.queue import QUEUE_FILE, newest_queue
    from xrdmap.store import sample_sizes

    store = str(args.store)
    sample_sizes(store)  # not a store: one line, before anything starts
    queue = args.queue or newest_queue(store)
    app = create_app(store, queue, labeler=args.labeler or "", host=args.host)
    print(f"Labeling {queue / QUEUE_FILE} at http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def draw_labels(args: argparse.Namespace) -> int:
    from xrdmap.simulate.expert import draw_expert_labels
    from xrdmap.store import sample_sizes

    sizes = sample_sizes(str(args.store))
    labels = draw_expert_labels(args.truth_dir, list(sizes), args.n, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(args.out, index=False)
    print(f"Wrote {len(labels)} labels drawn from {args.truth_dir} to {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    imp.add_argument("store", metavar="STORE")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--labeler", default=None, help="who labeled (overrides the file's)")
    imp.set_defaults(func=labels_import)
    exp = lab_sub.add_parser("export", help="write the stored labels as CSV")
    exp.add_argument("store", metavar="STORE")
    exp.add_argument("--out", type=Path, required=True, help="CSV to write")
    exp.set_defaults(func=labels_export)

    ui = sub.add_parser(
        "label-ui",
        help="label a relabel queue in a local web page",
        description=(
            "Serve a page with each queued point's picture and one checkbox per class; "
            "every saved point is checked and appended to the store's labels."
        ),
    )
    ui.add_argument("store", metavar="STORE")
    ui.add_argument(
        "--queue",
        type=Path,
        default=None,
        help="queue folder (default: the newest under STORE-queue)",
    )
    ui.add_argument("--labeler", default=None, help="name filled in on the page")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=8765)
    ui.set_defaults(func=label_ui)

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
    draw.add_argument("--store", required=True)
    draw.add_argument("--n", type=positive(int), default=139, help="number of points (default 139)")
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--out", type=Path, required=True, help="labels CSV to write")
    draw.set_defaults(func=draw_labels)
