"""The relabel query of a store: which points to ask the expert about next, and why."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xrdmap.active.scores import DEFAULT_SCORE, unsure_fraction
from xrdmap.active.strategies import (
    DEFAULT_STRATEGY,
    USES_EMBEDDING,
    Pool,
    cold_start_batch,
    pattern_embedding,
    select,
)
from xrdmap.classes import CLASS_NAMES
from xrdmap.features import pattern_features
from xrdmap.label_store import stored_labels
from xrdmap.store import (
    latest_predicted,
    load_store_points,
    open_store,
    read_confidences,
    read_spread,
    samples,
)

COLD_START = "cold start"


@dataclass(frozen=True)
class Query:
    """``table``: sample, point, x_um, y_um, score, reason, asked_about (the class the
    point is asked about: its per-class turn, else its least sure class; "" for a cold
    start), conf_<class>...; ``version``: the model whose confidences were used ("" for
    a cold start)."""

    table: pd.DataFrame
    version: str


def store_confidences(store: str, version: str) -> np.ndarray:
    """(n, n_classes) confidences of ``version`` over every point, samples in order."""
    root = open_store(store)
    return np.concatenate([read_confidences(root, s, version) for s in samples(root)])


def store_spreads(store: str, version: str) -> np.ndarray | None:
    """(n, n_classes) spread over the members of ``version`` over every point, samples
    in order; ``None`` for a single network (no spread stored)."""
    root = open_store(store)
    spread = np.concatenate([read_spread(root, s, version) for s in samples(root)])
    return None if np.isnan(spread).all() else spread


def query_points(
    store: str,
    n: int,
    *,
    strategy: str = DEFAULT_STRATEGY,
    score: str = DEFAULT_SCORE,
    version: str | None = None,
    min_distance_um: float = 10.0,
    seed: int = 0,
) -> Query:
    """``n`` unlabeled points to relabel, from the confidences of model ``version``
    (default: the latest predicted); a cold start (no model) when none exists yet.

    Parameters
    ----------
    store : str
        A store written by ``xrdmap process``.
    n : int
        Points to queue.
    strategy : str
        A name of :data:`xrdmap.active.strategies.STRATEGIES`.
    score : str
        The uncertainty score of the uncertainty-based strategies.
    version : str, optional
        Model version whose confidences are used.
    min_distance_um : float
        No two queued points of one sample closer than this.
    seed : int
        Seed of every random choice.
    """
    every = load_store_points(store)
    version = latest_predicted(store) if version is None else version
    labels = stored_labels(store)
    labeled = every.index_of(labels["sample"], labels["point"])

    def embedding() -> np.ndarray:
        return pattern_embedding(pattern_features(every.patterns), seed=seed)

    if version:
        conf = store_confidences(store, version)
        pool = Pool(
            conf,
            embedding() if strategy in USES_EMBEDDING else None,
            every.groups,
            every.xy,
            every.valid,
            labeled,
            score=score,
            min_distance_um=min_distance_um,
            seed=seed,
            member_spread=store_spreads(store, version),
        )
        batch = select(strategy, pool, n)
        picked, reasons = batch.picked, batch.reasons
        scores = pool.scores()
        asked_about = [CLASS_NAMES[k] for k in batch.asked_about]
    else:
        valid = every.valid.copy()
        valid[labeled] = False
        picked = cold_start_batch(
            embedding(),
            n,
            groups=every.groups,
            xy=every.xy,
            min_distance_um=min_distance_um,
            valid=valid,
            seed=seed,
        )
        conf = np.full((len(every.patterns), len(CLASS_NAMES)), np.nan)
        scores = np.full(len(every.patterns), np.nan)
        reasons = [f"{COLD_START}: typical of its pattern family (no model yet)"] * len(picked)
        asked_about = [""] * len(picked)
    table = pd.DataFrame(
        {
            "sample": every.groups[picked],
            "point": every.points[picked],
            "x_um": every.xy[picked, 0],
            "y_um": every.xy[picked, 1],
            "score": scores[picked],
            "reason": reasons,
            "asked_about": asked_about,
        }
    )
    for i, name in enumerate(CLASS_NAMES):
        table[f"conf_{name}"] = conf[picked, i]
    return Query(table=table, version=version)


def store_unsure_fraction(store: str, version: str) -> float:
    """Share of the store's valid points with a class confidence inside 0.2..0.8."""
    return unsure_fraction(store_confidences(store, version))
