"""Simulated-oracle experiment: accuracy against number of labels, active vs random.

    python benchmarks/al_benchmark.py data/full.zarr data/full/truth --seeds 5 --out DIR

The simulator's ground truth answers every query. For each seed, the network is
pre-trained once (synthetic patterns, as ``xrdmap train`` does); then, for each
strategy, labels are added batch by batch up to each budget, the network is fine-tuned
from the pre-trained weights on all of them (a fixed number of epochs, as ``xrdmap
train`` does), every pattern is predicted, and the accuracy of each class is measured on
every point not labeled. Strategies:

- ``random``: points drawn uniformly at random (the reference paper's protocol);
- ``uncertainty``: a cold-start batch, then the least-confident points only;
- ``diverse``: a cold-start batch, then diverse uncertain batches;
- ``hybrid``: the random first batch, then half diverse uncertain, half random;
- ``per-class``: the random first batch, then turns over the classes, each adding its
  point closest to 0.5.

Every batch after the first comes from the strategy registry the relabel query uses
(:data:`xrdmap.active.strategies.STRATEGIES`). Writes results.csv, summary.csv and
curves.png into ``--out`` and prints what it measured.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.classifier import DenseClassifier
from xrdmap.active.strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Pool,
    cold_start_batch,
    pattern_embedding,
    select,
)
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig, TrainConfig, load_phases, load_train
from xrdmap.features import pattern_features
from xrdmap.simulate.expert import load_truth
from xrdmap.store import load_store_points
from xrdmap.synthetic import synthetic_patterns

#: Strategies whose first batch is drawn at random (the others start cold, from a mixture).
RANDOM_START = ("random", "hybrid", "per-class")
DEFAULT_BUDGETS = (20, 40, 70, 139)
#: The arms, in the plot's order: random selection first, then every other strategy.
ARMS = ("random", *(k for k in STRATEGIES if k != "random"))


def run_al_benchmark(
    store: str,
    truth_dir: str,
    cfg: TrainConfig,
    phases: PhasesConfig,
    *,
    seeds: int = 5,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    strategies: Sequence[str] = ARMS,
    report: Callable[[str], None] = print,
) -> pd.DataFrame:
    """One row per (strategy, seed, budget): per-class accuracy, their mean, seconds."""
    every = load_store_points(store)
    samples, patterns, groups, xy = every.samples, every.patterns, every.groups, every.xy
    truth = load_truth(truth_dir, samples)[list(CLASS_NAMES)].to_numpy()
    valid = every.valid
    embedding = pattern_embedding(pattern_features(patterns))
    rows = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        clf = DenseClassifier.from_config(cfg, seed=seed)
        synthetic = synthetic_patterns(store, phases, cfg, seed)
        if synthetic is not None:
            clf.pretrain(synthetic)
        report(f"seed {seed}: pre-trained in {time.perf_counter() - t0:.0f} s")
        first = cold_start_batch(
            embedding, budgets[0], groups=groups, xy=xy, valid=valid, seed=seed
        )
        for strategy in strategies:
            rng = np.random.default_rng(seed)
            if strategy in RANDOM_START:
                labeled = rng.choice(np.flatnonzero(valid), budgets[0], replace=False)
            else:
                labeled = first
            for k in range(len(budgets)):
                t1 = time.perf_counter()
                clf.fit(patterns[labeled], truth[labeled])
                conf = clf.predict_proba(patterns)
                scored = np.setdiff1d(np.flatnonzero(valid), labeled)
                acc = ((conf[scored] >= 0.5) == truth[scored]).mean(axis=0)
                rows.append(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "labels": len(labeled),
                        **dict(zip(CLASS_NAMES, acc, strict=True)),
                        "mean": float(acc.mean()),
                        "seconds": time.perf_counter() - t1,
                    }
                )
                report(
                    f"seed {seed} {strategy:11s} {len(labeled):4d} labels: "
                    f"mean accuracy {acc.mean():.4f}"
                )
                if k + 1 == len(budgets):
                    break
                n_new = budgets[k + 1] - len(labeled)
                pool = Pool(conf, embedding, groups, xy, valid, labeled, seed=seed)
                new = select(strategy, pool, n_new).picked
                labeled = np.concatenate([labeled, new])
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, min and max over seeds of the mean accuracy, per
    strategy and number of labels."""
    grouped = results.groupby(["strategy", "labels"])["mean"]
    return grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()


def labels_to_reach(results: pd.DataFrame, strategy: str, target: float) -> int | None:
    """Fewest labels at which ``strategy``'s mean accuracy (over seeds) reaches ``target``."""
    s = summarize(results)
    s = s[(s["strategy"] == strategy) & (s["mean"] >= target)]
    return int(s["labels"].min()) if len(s) else None


def plot_curves(
    results: pd.DataFrame, path: str, *, banded: Sequence[str] = ("random", DEFAULT_STRATEGY)
) -> None:
    """Mean accuracy against number of labels per strategy, in
    :data:`ARMS` order: the mean over seeds as a
    line, the range over seeds (min to max) as a band for the ``banded`` strategies;
    the random strategy's mean at the largest budget as a dashed reference, half that
    budget dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(results)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for strategy in [k for k in ARMS if k in set(s["strategy"])]:
        part = s[s["strategy"] == strategy]
        line = ax.plot(part["labels"], part["mean"], marker="o", label=strategy)[0]
        if strategy in banded:
            ax.fill_between(
                part["labels"], part["min"], part["max"], color=line.get_color(), alpha=0.15
            )
    top = int(s["labels"].max())
    reference = s[(s["strategy"] == "random") & (s["labels"] == top)]["mean"]
    if len(reference):
        ax.axhline(
            float(reference.iloc[0]), color="grey", ls="--", lw=1, label=f"random, {top} labels"
        )
        ax.axvline(top / 2, color="grey", ls=":", lw=1, label=f"half of {top} labels")
    n_seeds = int(results["seed"].nunique())
    shown = " and ".join(k for k in banded if k in set(s["strategy"]))
    ax.set_xlabel("expert labels")
    ax.set_ylabel("accuracy, mean over the 9 classes")
    ax.set_ylim(top=1.0)
    ax.set_title(
        f"Simulated oracle: mean over {n_seeds} seeds; band = min..max ({shown})", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(title="selection", fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("truth_dir")
    parser.add_argument("--conf", type=Path, default=None, help="configuration folder")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--budgets",
        type=lambda t: sorted(int(v) for v in t.split(",")),
        default=list(DEFAULT_BUDGETS),
        help="label counts, comma-separated (default 20,40,70,139)",
    )
    parser.add_argument(
        "--strategies",
        type=lambda t: t.split(","),
        default=list(ARMS),
        help=f"comma-separated, among {','.join(ARMS)} (default all; random is needed)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for results and plot")
    args = parser.parse_args(argv)
    if len(args.budgets) < 2 or args.budgets[0] < 5:
        parser.error("--budgets: give at least two label counts, the first >= 5")
    if "random" not in args.strategies or not set(args.strategies) <= set(ARMS):
        parser.error(f"--strategies: choose among {','.join(ARMS)}, random included")
    conf = args.conf or Path(__file__).resolve().parents[1] / "conf"
    cfg, phases = load_train(conf / "train.yaml"), load_phases(conf / "phases.yaml")
    budgets = args.budgets
    results = run_al_benchmark(
        args.store,
        args.truth_dir,
        cfg,
        phases,
        seeds=args.seeds,
        budgets=budgets,
        strategies=args.strategies,
    )
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


if __name__ == "__main__":
    raise SystemExit(main())
