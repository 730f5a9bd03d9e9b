"""Simulated-oracle experiment: accuracy against number of labels, active vs random.

The simulator's ground truth answers every query. For each seed, the network is
pre-trained once (synthetic patterns, as ``xrdmap train`` does); then, for each
strategy, labels are added batch by batch up to each budget, the network is fine-tuned
from the pre-trained weights on all of them (a fixed number of epochs, as ``xrdmap
train`` does), every pattern is predicted, and the accuracy of each class is measured on
every point not labeled. Strategies:

- ``random``: points drawn uniformly at random (the reference paper's protocol);
- ``uncertainty``: a cold-start batch, then the least-confident points only;
- ``diverse``: a cold-start batch, then :func:`models.selection.diverse_batch`;
- ``hybrid``: the random first batch, then :func:`models.selection.hybrid_batch` (half
  diverse uncertain, half random);
- ``per-class``: the random first batch, then :func:`models.selection.per_class_batch`
  (turns over the classes, each adding its point closest to 0.5).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from models.classifier import DenseClassifier
from models.preprocess import pattern_features
from models.query import load_store_points
from models.selection import (
    cold_start_batch,
    diverse_batch,
    hybrid_batch,
    pattern_embedding,
    per_class_batch,
    top_uncertain,
    uncertainty,
)
from models.strategies import BENCHMARK_STRATEGIES, DEFAULT_QUERY_STRATEGY
from models.train import synthetic_patterns
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.simulate.expert import load_truth

#: Strategies whose first batch is drawn at random (the others start cold, from a mixture).
RANDOM_START = ("random", "hybrid", "per-class")
DEFAULT_BUDGETS = (20, 40, 70, 139)


def run_al_benchmark(
    store: str,
    truth_dir: str,
    cfg: TrainConfig,
    phases: PhasesConfig,
    *,
    seeds: int = 5,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    strategies: Sequence[str] = BENCHMARK_STRATEGIES,
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
        clf = DenseClassifier(cfg, seed=seed)
        synthetic = synthetic_patterns(store, phases, cfg, seed)
        if synthetic is not None:
            clf.pretrain(synthetic)
        report(f"seed {seed}: pre-trained in {time.perf_counter() - t0:.0f} s")
        first = cold_start_batch(embedding, budgets[0], groups=groups, xy=xy, valid=valid,
                                 seed=seed)  # fmt: skip
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
                rows.append({"strategy": strategy, "seed": seed, "labels": len(labeled),
                             **dict(zip(CLASS_NAMES, acc, strict=True)),
                             "mean": float(acc.mean()),
                             "seconds": time.perf_counter() - t1})  # fmt: skip
                report(f"seed {seed} {strategy:11s} {len(labeled):4d} labels: "
                       f"mean accuracy {acc.mean():.4f}")  # fmt: skip
                if k + 1 == len(budgets):
                    break
                n_new = budgets[k + 1] - len(labeled)
                scores = uncertainty(conf)
                if strategy == "random":
                    rest = np.setdiff1d(np.flatnonzero(valid), labeled)
                    new = rng.choice(rest, n_new, replace=False)
                elif strategy == "uncertainty":
                    new = top_uncertain(scores, n_new, exclude=labeled)
                elif strategy == "hybrid":
                    new = hybrid_batch(scores, embedding, n_new, groups=groups, xy=xy,
                                       exclude=labeled, seed=seed)  # fmt: skip
                elif strategy == "per-class":
                    new, _ = per_class_batch(conf, n_new, groups=groups, xy=xy,
                                             exclude=labeled, seed=seed)  # fmt: skip
                else:
                    new = diverse_batch(scores, embedding, n_new, groups=groups, xy=xy,
                                        exclude=labeled, seed=seed)  # fmt: skip
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


def plot_curves(results: pd.DataFrame, path: str, *, banded: Sequence[str] = ("random",
                DEFAULT_QUERY_STRATEGY)) -> None:  # fmt: skip
    """Mean accuracy against number of labels per strategy, in
    :data:`~models.strategies.BENCHMARK_STRATEGIES` order: the mean over seeds as a
    line, the range over seeds (min to max) as a band for the ``banded`` strategies;
    the random strategy's mean at the largest budget as a dashed reference, half that
    budget dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(results)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for strategy in [k for k in BENCHMARK_STRATEGIES if k in set(s["strategy"])]:
        part = s[s["strategy"] == strategy]
        line = ax.plot(part["labels"], part["mean"], marker="o", label=strategy)[0]
        if strategy in banded:
            ax.fill_between(part["labels"], part["min"], part["max"], color=line.get_color(),
                            alpha=0.15)  # fmt: skip
    top = int(s["labels"].max())
    reference = s[(s["strategy"] == "random") & (s["labels"] == top)]["mean"]
    if len(reference):
        ax.axhline(float(reference.iloc[0]), color="grey", ls="--", lw=1,
                   label=f"random, {top} labels")  # fmt: skip
        ax.axvline(top / 2, color="grey", ls=":", lw=1, label=f"half of {top} labels")
    n_seeds = int(results["seed"].nunique())
    shown = " and ".join(k for k in banded if k in set(s["strategy"]))
    ax.set_xlabel("expert labels")
    ax.set_ylabel("accuracy, mean over the 9 classes")
    ax.set_ylim(top=1.0)
    ax.set_title(f"Simulated oracle: mean over {n_seeds} seeds; band = min..max ({shown})",
                 fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(title="selection", fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
