"""The reference paper's experiment on a processed simulated beamtime.

    python benchmarks/classifier_benchmark.py data/full.zarr data/full/truth --seeds 5

For each seed: 139 points drawn at random and labeled from the ground truth, split
81/29/29 (train/validation/test), the calibrated ensemble (conf/train.yaml,
models/ensemble.py) pre-trained on synthetic patterns (src/xrdmap/synthetic.py),
fine-tuned on the 81 and calibrated on the 29 validation labels, then every point not
used for training scored against the ground truth, class by class: accuracy, balanced
accuracy, precision, recall, F1 and expected calibration error (mean over seeds), with
the number of true points of each class (accuracy hides a rare class that is never
found). Its first member alone (one network, uncalibrated) is scored beside it. A scikit-learn
logistic regression on the same labeled features is measured beside it, and so is the
dense network without pre-training (``--no-pretrain-baseline`` skips it). Prints what
it measured, with the seconds of each stage.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from models.classifier import DenseClassifier
from models.ensemble import CalibratedEnsemble
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import load_phases, load_train
from xrdmap.evaluation import class_metrics
from xrdmap.features import pattern_features
from xrdmap.simulate.expert import draw_expert_labels, load_truth
from xrdmap.store import load_store_points
from xrdmap.synthetic import synthetic_patterns

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "ece")


def scores(truth: np.ndarray, confidence: np.ndarray) -> dict[str, dict[str, float]]:
    """Per class: the :data:`METRICS` and the number of true points."""
    found = class_metrics(truth, confidence)
    return {
        c: {k: found[c][k] for k in METRICS} | {"true": found[c]["tp"] + found[c]["fn"]}
        for c in CLASS_NAMES
    }


def table(runs: list[dict[str, dict[str, float]]]) -> str:
    """Mean over seeds, one line per class."""
    head = f"{'class':18} {'true pts':>8} " + " ".join(f"{m[:9]:>9}" for m in METRICS)
    lines = [head]
    for c in CLASS_NAMES:
        means = [np.mean([r[c][m] for r in runs]) for m in METRICS]
        true = np.mean([r[c]["true"] for r in runs])
        lines.append(f"{c:18} {true:8.0f} " + " ".join(f"{v:9.3f}" for v in means))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("truth_dir")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", type=int, default=139)
    parser.add_argument("--no-pretrain-baseline", action="store_true")
    args = parser.parse_args()
    settings, phases = load_train(), load_phases()
    every = load_store_points(args.store)
    samples, patterns = every.samples, every.patterns
    truth = load_truth(args.truth_dir, samples)[list(CLASS_NAMES)].to_numpy()
    models = ["ensemble", "one_network", "logistic"] + (
        [] if args.no_pretrain_baseline else ["dense_no_pretrain"]
    )
    temperatures: list[float] = []
    results = {m: [] for m in models} | {"predict_s": [], "synthesize_s": [], "fit_s": []}
    for seed in range(args.seeds):
        labels = draw_expert_labels(args.truth_dir, samples, args.labels, seed=seed)
        idx = every.index_of(labels["sample"], labels["point"])
        order = np.random.default_rng(seed).permutation(len(idx))
        n_train, n_val = round(args.labels * 81 / 139), round(args.labels * 29 / 139)
        train, val = idx[order[:n_train]], idx[order[n_train : n_train + n_val]]
        y = labels[list(CLASS_NAMES)].to_numpy()
        y_train, y_val = y[order[:n_train]], y[order[n_train : n_train + n_val]]
        t0 = time.perf_counter()
        synthetic = synthetic_patterns(args.store, phases, settings, seed)
        results["synthesize_s"].append(time.perf_counter() - t0)
        ens = CalibratedEnsemble.from_config(settings, seed=seed).fit(
            patterns[train], y_train, patterns[val], y_val, synthetic=synthetic
        )
        results["fit_s"].append(time.perf_counter() - t0 - results["synthesize_s"][-1])
        t0 = time.perf_counter()
        members = ens.predict_members(patterns)
        conf = members.mean(axis=1)
        results["predict_s"].append(time.perf_counter() - t0)
        scored = np.setdiff1d(np.arange(len(patterns)), train)
        scored = scored[~np.isnan(conf[scored]).any(axis=1)]
        results["ensemble"].append(scores(truth[scored], conf[scored]))
        single = ens.members_[0].predict_proba(patterns[scored])  # the first member alone
        results["one_network"].append(scores(truth[scored], single))
        temperatures.append(ens.temperature_)
        if "dense_no_pretrain" in results:
            plain = DenseClassifier.from_config(settings, seed=seed).fit(
                patterns[train], y_train, patterns[val], y_val
            )
            conf = plain.predict_proba(patterns[scored])
            results["dense_no_pretrain"].append(scores(truth[scored], conf))
        lr = OneVsRestClassifier(LogisticRegression(max_iter=2000, class_weight="balanced"))
        x = pattern_features(patterns)
        present = y_train.any(axis=0) & ~y_train.all(axis=0)
        proba = np.zeros((len(scored), len(CLASS_NAMES)), np.float32)
        proba[:, ~present] = y_train[0, ~present]  # a class never or always seen: constant
        lr.fit(x[train], y_train[:, present])
        proba[:, present] = lr.predict_proba(x[scored])
        results["logistic"].append(scores(truth[scored], proba))
        f1 = {c: round(m["f1"], 3) for c, m in results["ensemble"][-1].items()}
        print(f"seed {seed}: ensemble F1 {json.dumps(f1)}; temperature {ens.temperature_:.2f}")
    print(f"\nTemperatures: {', '.join(f'{t:.2f}' for t in temperatures)}")
    for model in models:
        print(f"\n{model}, mean over {args.seeds} seeds, {args.labels} labels:")
        print(table(results[model]))
    for stage in ("synthesize", "fit", "predict"):
        print(f"{stage}: {np.mean(results[stage + '_s']):.2f} s per seed")


if __name__ == "__main__":
    main()
