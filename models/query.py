"""The relabel queue of a store: which points to ask the expert about next, and why."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import zarr

from models.predict import latest_predicted
from models.preprocess import pattern_features
from models.selection import (
    HYBRID_RANDOM_SHARE,
    cold_start_batch,
    diverse_batch,
    hybrid_batch,
    pattern_embedding,
    per_class_batch,
    top_uncertain,
    uncertainty,
)
from models.strategies import DEFAULT_QUERY_STRATEGY, QUERY_STRATEGIES
from xrdmap.classes import CLASS_NAMES
from xrdmap.label_store import stored_labels

COLD_START = "cold start"


@dataclass(frozen=True)
class StorePoints:
    """Every point of a store, samples concatenated in store order."""

    samples: list[str]
    patterns: np.ndarray  #: (n, nbins)
    groups: np.ndarray  #: sample name per point
    points: np.ndarray  #: point index within its sample
    xy: np.ndarray  #: (n, 2) position in um
    valid: np.ndarray  #: status 0 (a pattern was integrated)

    def index_of(self, samples, points) -> np.ndarray:
        """Flat indices of (sample, point) pairs."""
        sizes = [int((self.groups == s).sum()) for s in self.samples]
        offset = dict(zip(self.samples, np.cumsum([0, *sizes[:-1]]), strict=True))
        return np.array([offset[s] + p for s, p in zip(samples, points, strict=True)], int)


def load_store_points(store: str) -> StorePoints:
    root = zarr.open_group(store, mode="r")
    samples = root.attrs["xrdmap"]["samples"]
    status = [root[s]["status"][:] for s in samples]
    return StorePoints(
        samples=samples,
        patterns=np.concatenate([root[s]["patterns"][:] for s in samples]),
        groups=np.concatenate([np.full(len(st), s) for s, st in zip(samples, status, strict=True)]),
        points=np.concatenate([np.arange(len(st)) for st in status]),
        xy=np.concatenate([root[s]["positions"][:] for s in samples]),
        valid=np.concatenate(status) == 0,
    )


@dataclass(frozen=True)
class Query:
    #: sample, point, x_um, y_um, score, reason, asked_about (the class the point is
    #: asked about: its per-class turn, else its least sure class; "" for a cold
    #: start), conf_<class>...
    table: pd.DataFrame
    version: str  #: model whose confidences were used ("" for a cold start)


def query_points(
    store: str,
    n: int,
    *,
    strategy: str = DEFAULT_QUERY_STRATEGY,
    score: str = "least_confidence",
    version: str | None = None,
    min_distance_um: float = 10.0,
    seed: int = 0,
) -> Query:
    """``n`` unlabeled points to relabel, from the confidences of model ``version``
    (default: the latest predicted); a cold start (no model) when none exists yet."""
    if strategy not in QUERY_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {QUERY_STRATEGIES}")
    root = zarr.open_group(store, mode="r")
    every = load_store_points(store)
    samples, patterns, groups, points, xy = (every.samples, every.patterns, every.groups,
                                             every.points, every.xy)  # fmt: skip
    valid = every.valid.copy()
    version = latest_predicted(store) if version is None else version
    labels = stored_labels(store)
    labeled = every.index_of(labels["sample"], labels["point"])
    embedding = pattern_embedding(pattern_features(patterns), seed=seed)
    if version:
        conf = np.concatenate([root[s]["confidence"][version][:] for s in samples])
        scores = uncertainty(conf, score)
        scores[~valid] = -np.inf
        if strategy == "diverse":
            picked = diverse_batch(scores, embedding, n, groups=groups, xy=xy,
                                   min_distance_um=min_distance_um, exclude=labeled,
                                   seed=seed)  # fmt: skip
            reasons = [f"uncertain ({score} {scores[i]:.2f}), diverse batch" for i in picked]
        elif strategy == "hybrid":
            picked = hybrid_batch(scores, embedding, n, groups=groups, xy=xy,
                                  min_distance_um=min_distance_um, exclude=labeled,
                                  seed=seed)  # fmt: skip
            n_active = n - round(n * HYBRID_RANDOM_SHARE)
            reasons = [f"uncertain ({score} {scores[i]:.2f}), diverse batch" if k < n_active
                       else "random point (keeps common patterns in the labels)"
                       for k, i in enumerate(picked)]  # fmt: skip
        elif strategy == "per-class":
            picked, classes = per_class_batch(conf, n, groups=groups, xy=xy,
                                              min_distance_um=min_distance_um,
                                              exclude=np.union1d(labeled, np.flatnonzero(~valid)),
                                              seed=seed)  # fmt: skip
            reasons = [f"turn of {CLASS_NAMES[k]}: confidence {conf[i, k]:.2f}, the closest "
                       f"to 0.5 among unlabeled points" for i, k in zip(picked, classes,
                                                                     strict=True)]  # fmt: skip
        else:
            picked = top_uncertain(scores, n, exclude=labeled)
            reasons = [f"uncertain ({score} {scores[i]:.2f})" for i in picked]
        if strategy != "per-class":  # asked about the class it is least sure of
            classes = np.argmin(np.abs(conf[picked] - 0.5), axis=1)
        asked_about = [CLASS_NAMES[k] for k in classes]
    else:
        valid[labeled] = False
        picked = cold_start_batch(embedding, n, groups=groups, xy=xy,
                                  min_distance_um=min_distance_um, valid=valid,
                                  seed=seed)  # fmt: skip
        conf = np.full((len(patterns), len(CLASS_NAMES)), np.nan)
        scores = np.full(len(patterns), np.nan)
        reasons = [f"{COLD_START}: typical of its pattern family (no model yet)"] * len(picked)
        asked_about = [""] * len(picked)
    table = pd.DataFrame({"sample": groups[picked], "point": points[picked],
                          "x_um": xy[picked, 0], "y_um": xy[picked, 1],
                          "score": scores[picked], "reason": reasons,
                          "asked_about": asked_about})  # fmt: skip
    for i, name in enumerate(CLASS_NAMES):
        table[f"conf_{name}"] = conf[picked, i]
    return Query(table=table, version=version)


def unsure_fraction(store: str, version: str, *, band: tuple[float, float] = (0.2, 0.8)) -> float:
    """Share of valid points with at least one class confidence inside ``band``."""
    root = zarr.open_group(store, mode="r")
    unsure = total = 0
    for sample in root.attrs["xrdmap"]["samples"]:
        conf = root[sample]["confidence"][version][:]
        ok = ~np.isnan(conf).any(axis=1)
        inside = ((conf[ok] > band[0]) & (conf[ok] < band[1])).any(axis=1)
        unsure += int(inside.sum())
        total += int(ok.sum())
    return unsure / max(total, 1)
