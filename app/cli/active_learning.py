"""Active-learning commands: ``query`` the points to label next, ``al-rounds``."""

from __future__ import annotations

import argparse
from pathlib import Path
from shlex import quote

from app.cli.common import add_verbose, make_folder, positive, prefect_session
from xrdmap.active.scores import DEFAULT_SCORE, SCORES
from xrdmap.active.strategies import DEFAULT_STRATEGY, STRATEGIES
from xrdmap.config import ConfigError, conf_file, load_phases, load_process, registry_dir
from xrdmap.errors import StoreError


def query(args: argparse.Namespace) -> int:
    from xrdmap.store import has_confidences, latest_predicted, open_store  # not for --help

    if args.out:
        if args.out.exists():  # a queue is never written over (nor its labels)
            raise ConfigError(f"--out {args.out}: already exists; give a new folder")
        make_folder(args.out, "--out", parent=True)
    store = str(args.store)
    root = open_store(store)
    phases = load_phases(conf_file(args.conf, "phases.yaml"))
    if args.model and not has_confidences(root, args.model):
        raise StoreError(
            f"{store}: no confidences of model {args.model} "
            f"(run xrdmap predict {store} --model {args.model})"
        )
    # a queue from a model's confidences explains them with the network (Keras)
    network = ("models.network",) if args.model or latest_predicted(store) else ()
    with prefect_session(args.verbose, "flows.active_learning", *network):
        from flows.active_learning import query_relabel

        path, version = query_relabel(
            store,
            args.n,
            phases,
            args.strategy,
            args.score,
            args.model,
            str(args.out) if args.out else None,
            args.seed,
            registry_dir(args.conf, args.registry),
        )
    basis = f"confidences of model {version}" if version else "a cold start (no model yet)"
    print(f"Queued {args.n} point{'s' if args.n != 1 else ''} for relabeling from {basis}: {path}")
    print(
        "Fill in the class columns (0/1) and import with: "
        f"xrdmap labels import {quote(store)} {quote(str(path))}"
    )
    return 0


def al_rounds(args: argparse.Namespace) -> int:
    from xrdmap.store import sample_sizes

    store = str(args.store)
    sample_sizes(store)  # not a store: one line, before anything starts
    registry = registry_dir(args.conf, args.registry)
    dask = load_process(conf_file(args.conf, "process.yaml")).dask
    print(
        f"Active learning on {store}: {args.rounds} round(s) of {args.n} points. Each round "
        f"waits for labels: `xrdmap label-ui {quote(store)}` or `xrdmap labels import "
        f"{quote(store)} QUEUE_CSV`.",
        flush=True,
    )
    with prefect_session(args.verbose, "flows.active_learning"):
        from flows.active_learning import active_learning

        records = active_learning(
            store,
            registry,
            rounds=args.rounds,
            n=args.n,
            strategy=args.strategy,
            conf_dir=str(args.conf) if args.conf else None,
            min_labels=args.min_labels,
            poll_s=args.poll_s,
            timeout_s=args.timeout_h * 3600,
            dask=dask,
        )
    for r in records:
        acc = f"{r.test_mean_accuracy:.3f}" if r.test_mean_accuracy is not None else "n/a"
        print(
            f"round {r.round}: {r.labels} labels -> model {r.model}, test mean accuracy "
            f"{acc}, unsure share {r.unsure_share:.3f}"
        )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    qry = sub.add_parser(
        "query",
        help="queue the points an expert should label next (CSV + pictures)",
        description=(
            "A Prefect flow (query-relabel): picks N unlabeled points where the model is "
            "unsure (by default in turns over the classes, each taking its point closest "
            "to 0.5; a Gaussian-mixture cold start when no model has predicted yet), "
            "writes <store>-queue/<version>/queue.csv with a picture per point (pattern, "
            "reference lines, and why the model called each class: integrated gradients "
            "per 2theta bin), and "
            "publishes the queue as a Prefect artifact."
        ),
    )
    qry.add_argument("store", metavar="STORE")
    qry.add_argument("--n", type=positive(int), default=20, help="points to queue (default 20)")
    qry.add_argument(
        "--strategy",
        choices=tuple(STRATEGIES),
        default=DEFAULT_STRATEGY,
        help=f"how to pick the points (default {DEFAULT_STRATEGY})",
    )
    qry.add_argument(
        "--score",
        choices=SCORES,
        default=DEFAULT_SCORE,
        help="uncertainty score of the hybrid, diverse and uncertainty strategies "
        f"(default {DEFAULT_SCORE})",
    )
    qry.add_argument("--model", default=None, help="model version (default: the latest)")
    qry.add_argument(
        "--registry", default=None, help="model registry folder (for the attributions)"
    )
    qry.add_argument("--out", type=Path, default=None, help="queue folder (must be new)")
    qry.add_argument("--seed", type=int, default=0)
    add_verbose(qry)
    qry.set_defaults(func=query)

    rnd = sub.add_parser(
        "al-rounds",
        help="active-learning rounds: query, wait for labels, retrain, re-predict, maps",
        description=(
            "The Prefect flow active-learning: each round queues N points, waits until "
            "they are labeled (label-ui or labels import, from another shell), trains a "
            "new model version on every stored label, predicts the store (on the Dask "
            "cluster of process.yaml) and draws the maps. Rounds are recorded in "
            "STORE-queue/rounds.csv; re-running resumes."
        ),
    )
    rnd.add_argument("store", metavar="STORE")
    rnd.add_argument("--rounds", type=positive(int), default=1)
    rnd.add_argument("--n", type=positive(int), default=20, help="points per round (default 20)")
    rnd.add_argument("--strategy", choices=tuple(STRATEGIES), default=DEFAULT_STRATEGY)
    rnd.add_argument(
        "--min-labels",
        type=positive(int),
        default=None,
        help="go on once this many queued points are labeled (default all)",
    )
    rnd.add_argument("--poll-s", type=positive(float), default=10.0, help="seconds between checks")
    rnd.add_argument(
        "--timeout-h", type=positive(float), default=168.0, help="hours to wait per round"
    )
    rnd.add_argument("--registry", default=None, help="model registry folder")
    add_verbose(rnd)
    rnd.set_defaults(func=al_rounds)
