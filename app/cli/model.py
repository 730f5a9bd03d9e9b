"""Model commands: ``train`` a version, ``predict`` a store with it, ``evaluate`` it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.common import add_verbose, make_folder, prefect_session, print_metrics
from xrdmap.config import conf_file, load_phases, load_process, load_train, registry_dir


def train(args: argparse.Namespace) -> int:
    from models.train import train_version
    from xrdmap.label_store import labels_for

    cfg = load_train(conf_file(args.conf, "train.yaml"))
    phases = load_phases(conf_file(args.conf, "phases.yaml"))
    updates = {
        k: v for k, v in (("registry_dir", args.registry), ("seed", args.seed)) if v is not None
    }
    cfg = cfg.model_copy(update=updates)
    store = str(args.store)
    labels = labels_for(store, args.labels)
    version, card = train_version(store, labels, cfg, phases)
    split = card["split"]
    print(
        f"Trained model {version} in {cfg.registry_dir} on {len(split['train'])} labels "
        f"(validation {len(split['validation'])}, test {len(split['test'])}; "
        f"{card['epochs_trained']} epochs)."
    )
    if card["test_metrics"]:
        print_metrics(card["test_metrics"])
    return 0


def predict(args: argparse.Namespace) -> int:
    from flows.runtime import runs_in_process
    from models.predict import domain_mapping
    from models.registry import read_card
    from xrdmap.store import patterns_mb, sample_sizes

    store = str(args.store)
    sample_sizes(store)  # not a store: one line, before anything starts
    registry = registry_dir(args.conf, args.registry)
    card = read_card(registry, args.model)  # a missing version stops here
    version = card["version"]
    mapping = domain_mapping(store, card, allow_resample=args.resample)  # before any work
    if args.maps:
        make_folder(args.maps, "--maps")
    dask = load_process(conf_file(args.conf, "process.yaml")).dask
    # the network's module (Keras) is imported while a temporary server starts when
    # the regions run on threads of this process, not on a cluster's workers
    network = ("models.network",) if runs_in_process(dask, patterns_mb(store)) else ()
    with prefect_session(args.verbose, "flows.predict", *network):
        from flows.predict import run_predict_store

        summary = run_predict_store(
            store,
            registry,
            dask,
            version=version,
            maps_dir=str(args.maps) if args.maps else None,
            resample=args.resample,
        )
    if mapping is not None:
        print(
            f"Resampled through d-spacing from {mapping.source.describe()} onto the model's "
            f"{mapping.target.describe()}; {mapping.coverage:.0%} of its bins measured."
        )
    print(
        f"Predicted {summary.n_points} patterns with model {summary.version} in "
        f"{summary.seconds:.1f} s (model calls {summary.model_seconds:.2f} s); "
        f"confidences in {store}/samples/<sample>/confidence/{summary.version}."
    )
    print("Abstained (a class undecided, or the members disagree), per sample:")
    for sample, (n_abstain, n_valid) in summary.abstained.items():
        print(f"  {sample:24} {n_abstain:7d} of {n_valid:7d} ({n_abstain / max(n_valid, 1):.1%})")
    print("Maps:")
    for path in summary.maps:
        print(f"  {path}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from xrdmap.evaluation import evaluate_store
    from xrdmap.label_store import labels_for

    store = str(args.store)
    labels = labels_for(store, args.labels)
    version, metrics = evaluate_store(store, labels, args.model)
    source = args.labels or f"{store} (stored labels)"
    print(f"Model {version} on {len(labels)} labeled points of {source}:")
    print_metrics(metrics)
    return 0


def classify(args: argparse.Namespace) -> int:
    from models.classify import classify_pattern

    registry = registry_dir(args.conf, args.registry)
    phases = load_phases(conf_file(args.conf, "phases.yaml"))
    result = classify_pattern(args.file, args.wavelength, registry, phases, args.model)
    if args.json:
        print(json.dumps(result.record(), indent=2))
        return 0
    print(
        f"{args.file}: model {result.version} at {args.wavelength:g} A; "
        f"{result.coverage:.0%} of the model's d-range measured; intensities x{result.scale:.3g}"
    )
    if result.spread:
        print(f"{'class':18} {'confidence':>10} {'spread':>7}   (calibrated ensemble)")
        for name, c in result.confidences.items():
            print(f"{name:18} {c:10.3f} {result.spread[name]:7.3f}")
    else:
        print(f"{'class':18} {'confidence':>10}   (one network, not calibrated)")
        for name, c in result.confidences.items():
            print(f"{name:18} {c:10.3f}")
    if result.peaks:
        print("Peaks in the model's d-range (known phases with a line there):")
        for p in result.peaks:
            known = ", ".join(p.phases) or "UNEXPLAINED"
            print(f"  {p.tth_deg:8.3f} deg  d {p.d_a:6.3f} A  {p.significance:6.0f} sigma  {known}")
    else:
        print("No significant peak in the model's d-range.")
    if result.abstain:
        print("Verdict: abstain: " + "; ".join(result.abstain))
    else:
        present = [n for n, c in result.confidences.items() if c >= 0.5] or ["none"]
        print("Verdict: " + ", ".join(present))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "train",
        help="train a new classifier version from labeled points of a store",
        description=(
            "Split the labels (default 81/29/29 of 139, like the reference paper), "
            "pre-train the dense network on patterns synthesized from the phases' CIFs, "
            "fine-tune it on the train split (the validation loss is recorded), score the "
            "test split, and write a new version (.keras + model card) to the registry."
        ),
    )
    tr.add_argument("store", metavar="STORE")
    tr.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="train on this labels CSV instead of the labels stored in STORE",
    )
    tr.add_argument("--registry", default=None, help="model registry folder")
    tr.add_argument("--seed", type=int, default=None)
    tr.set_defaults(func=train)

    pred = sub.add_parser(
        "predict",
        help="classify every pattern of a store with a model version, then draw the maps",
        description=(
            "A Prefect flow over Dask-parallel chunks writes samples/<sample>/confidence/<version> "
            "(n, 9) for every sample (earlier versions stay), then per-class confidence "
            "maps, phase maps of the corrosion products and an overview as PNG and as "
            "Prefect artifacts."
        ),
    )
    pred.add_argument("store", metavar="STORE")
    pred.add_argument("--model", default=None, help="model version (default: the latest)")
    pred.add_argument("--registry", default=None, help="model registry folder")
    pred.add_argument("--maps", type=Path, default=None, help="folder for the PNG maps")
    pred.add_argument(
        "--resample",
        action="store_true",
        help=(
            "for a store integrated on another 2theta axis or wavelength than the model's: "
            "map its patterns onto the model's axis through d-spacing (recorded with the "
            "confidences); without it such a store is refused"
        ),
    )
    add_verbose(pred)
    pred.set_defaults(func=predict)

    ev = sub.add_parser(
        "evaluate",
        help="per-class accuracy, precision, recall, F1 of stored predictions against labels",
    )
    ev.add_argument("store", metavar="STORE")
    ev.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="labels CSV (default: the labels stored in STORE)",
    )
    ev.add_argument("--model", default=None, help="model version (default: the latest)")
    ev.set_defaults(func=evaluate)

    cl = sub.add_parser(
        "classify",
        help="classify one measured 1D pattern (lab diffractometer, another beamline)",
        description=(
            "Read a two-column pattern (2theta in degrees, intensity: .xy, .xye, .dat, .txt, "
            ".csv, .chi), bring it onto the model's 2theta axis through d-spacing at the "
            "given wavelength, scale its intensities to the model's training patterns, and "
            "print the confidence of every class, the peaks in the model's d-range with the "
            "known phases that explain them, and whether to abstain."
        ),
    )
    cl.add_argument("file", type=Path, metavar="FILE")
    cl.add_argument(
        "--wavelength",
        type=float,
        required=True,
        metavar="A",
        help="X-ray wavelength of the measurement, Angstrom (Cu K-alpha 1.5418, Co 1.789)",
    )
    cl.add_argument("--model", default=None, help="model version (default: the latest)")
    cl.add_argument("--registry", default=None, help="model registry folder")
    cl.add_argument("--json", action="store_true", help="one JSON object instead of text")
    cl.set_defaults(func=classify)
