"""Which points an expert should label next: the selection strategies, by name.

All functions are pure (arrays in, indices out) and seeded. :data:`STRATEGIES` maps
each name to a function of a :class:`Pool` (what is known of every point) and a batch
size that returns a :class:`Batch` (the points, the class each is asked about, why);
the relabel query and the simulated-oracle benchmark both dispatch through it.

Uncertainty alone tends to pick twenty neighbours on one rust rim (and is known to lose
to random picks on multi-label data), so :func:`diverse_batch` takes the most uncertain
candidates, clusters them in pattern space (k-means) and takes the most uncertain point
of each cluster, at most :data:`MAX_SHARE_PER_SAMPLE` of the batch from one sample (an
even share when there are fewer samples than that allows) and never two within
``min_distance_um`` of each other on one map. :func:`cold_start_batch` needs no model:
one point per component of a Gaussian mixture over the patterns.

:func:`per_class_batch` takes turns over the classes instead: each turn adds the
unlabeled point whose confidence *for that class* is closest to 0.5. A rare class the
model never predicts (all confidences below 0.5) thus gets its most likely positives
asked, and easy common classes (plain resin) keep a share of every batch, where one
score over all classes would spend the batch on the hardest class only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xrdmap.active.scores import DEFAULT_SCORE, uncertainty
from xrdmap.classes import CLASS_NAMES
from xrdmap.trust import disagreeing

#: Candidate pool of a diverse batch, as a multiple of the batch size.
POOL_FACTOR = 10
#: At most this share of a batch (rounded up, at least 2 points) from one sample.
MAX_SHARE_PER_SAMPLE = 0.25
#: Share of a hybrid batch drawn at random (the rest: a diverse uncertain batch first).
HYBRID_RANDOM_SHARE = 0.5
#: Points used to fit the embedding and the cold-start mixture (speed; seeded).
FIT_POINTS = 20000


def pattern_embedding(features: np.ndarray, *, n_components: int = 16, seed: int = 0):
    """(n, n_components) PCA coordinates of pattern features (fitted on a subsample)."""
    x = np.nan_to_num(np.asarray(features, dtype=np.float32))
    rng = np.random.default_rng(seed)
    fit = x[rng.choice(len(x), min(FIT_POINTS, len(x)), replace=False)]
    from sklearn.decomposition import PCA  # here: scikit-learn costs 1 s to import

    pca = PCA(n_components=min(n_components, *fit.shape), random_state=seed).fit(fit)
    return pca.transform(x).astype(np.float32)


class _Spread:
    """Accepts points while the per-sample cap and the minimum distance allow."""

    def __init__(self, n: int, groups: np.ndarray, xy: np.ndarray, min_distance: float, eligible):
        n_groups = len(np.unique(groups[eligible]))  # few samples: each takes its share
        self.cap = max(2, math.ceil(MAX_SHARE_PER_SAMPLE * n), math.ceil(n / max(n_groups, 1)))
        self.groups, self.xy, self.min_distance = groups, xy, min_distance
        self.picked: list[int] = []

    def accepts(self, i: int) -> bool:
        same = [j for j in self.picked if self.groups[j] == self.groups[i]]
        if len(same) >= self.cap:
            return False
        if same and self.min_distance > 0:
            d = np.hypot(*(self.xy[same] - self.xy[i]).T)
            return bool(d.min() >= self.min_distance)
        return True

    def offer(self, i: int) -> bool:
        """Take point ``i`` if it is new and the rules accept it; say whether it was."""
        if i in self.picked or not self.accepts(i):
            return False
        self.picked.append(i)
        return True

    def take(self, order: np.ndarray, n: int) -> None:
        for i in order:
            if len(self.picked) >= n:
                return
            self.offer(int(i))


def _eligible(n_points: int, exclude: np.ndarray | None, valid: np.ndarray | None) -> np.ndarray:
    ok = np.ones(n_points, bool) if valid is None else valid.copy()
    if exclude is not None:
        ok[exclude] = False
    return np.flatnonzero(ok)


def top_uncertain(scores: np.ndarray, n: int, *, exclude: np.ndarray | None = None):
    """The ``n`` highest scores (uncertainty only), ties broken by index."""
    idx = _eligible(len(scores), exclude, np.isfinite(scores))
    return idx[np.argsort(-scores[idx], kind="stable")[:n]]


def diverse_batch(
    scores: np.ndarray,
    embedding: np.ndarray,
    n: int,
    *,
    groups: np.ndarray,
    xy: np.ndarray,
    min_distance_um: float = 10.0,
    exclude: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``n`` point indices: uncertain, in different clusters, spread over samples and maps.

    ``groups`` (n_points,) names each point's sample; ``xy`` (n_points, 2) its position
    in um; ``exclude`` lists points already labeled.
    """
    idx = _eligible(len(scores), exclude, np.isfinite(scores))
    ranked = idx[np.argsort(-scores[idx], kind="stable")]
    pool = ranked[: POOL_FACTOR * n]
    if len(pool) <= n:
        return pool
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=n, n_init=3, random_state=seed).fit_predict(embedding[pool])
    best_of = [pool[clusters == k][np.argmax(scores[pool[clusters == k]])] for k in range(n)]
    spread = _Spread(n, groups, xy, min_distance_um, idx)
    spread.take(np.array(sorted(best_of, key=lambda i: -scores[i])), n)
    spread.take(ranked, n)  # clusters lost to the spread rules: next most uncertain points
    return np.array(spread.picked)


def per_class_batch(
    confidence: np.ndarray,
    n: int,
    *,
    groups: np.ndarray,
    xy: np.ndarray,
    min_distance_um: float = 10.0,
    exclude: np.ndarray | None = None,
    seed: int = 0,
    member_spread: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` point indices, taken in turns over the classes (a seeded random class order
    each turn): on its turn a class adds its unlabeled point with confidence closest to
    0.5 that the spread rules accept (per-sample cap, ``min_distance_um`` apart); with
    ``member_spread`` (an ensemble's), a class the members disagree on counts as that
    much less decided. Returns the indices in the order taken and, for each, the class
    (column) whose turn took it; NaN rows (no pattern) are never taken."""
    c = np.asarray(confidence, dtype=np.float64)
    idx = _eligible(len(c), exclude, np.asarray(~np.isnan(c).any(axis=1)))
    n = min(n, len(idx))
    closeness = np.abs(2 * c[idx] - 1)  # 0 = undecided
    if member_spread is not None:
        closeness -= 2 * np.nan_to_num(np.asarray(member_spread, dtype=np.float64)[idx])
    rankings = [idx[np.argsort(closeness[:, k], kind="stable")] for k in range(c.shape[1])]
    next_of = [0] * c.shape[1]
    spread = _Spread(n, groups, xy, min_distance_um, idx)
    taken_for: list[int] = []
    rng = np.random.default_rng(seed)
    while len(spread.picked) < n and any(p < len(idx) for p in next_of):
        for k in rng.permutation(c.shape[1]):
            ranking = rankings[k]
            while len(spread.picked) < n and next_of[k] < len(ranking):
                i = int(ranking[next_of[k]])
                next_of[k] += 1
                if spread.offer(i):
                    taken_for.append(int(k))
                    break
    return np.array(spread.picked, dtype=int), np.array(taken_for, dtype=int)


def cold_start_batch(
    embedding: np.ndarray,
    n: int,
    *,
    groups: np.ndarray,
    xy: np.ndarray,
    min_distance_um: float = 10.0,
    valid: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``n`` point indices with no model: the most typical point of each component of a
    Gaussian mixture (``n`` components) fitted to the patterns' embedding."""
    idx = _eligible(len(embedding), None, valid)
    rng = np.random.default_rng(seed)
    # float64: in float32 a tight family of near-identical patterns (resin, bare steel)
    # gave a component a variance below zero and the fit failed (the full preset, n=3)
    points = np.asarray(embedding, dtype=np.float64)
    fit = points[rng.choice(idx, min(FIT_POINTS, len(idx)), replace=False)]
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n, covariance_type="diag", random_state=seed).fit(fit)
    density = gmm.score_samples(points[idx])
    component = gmm.predict(points[idx])
    spread = _Spread(n, groups, xy, min_distance_um, idx)
    typical = [
        idx[component == k][np.argmax(density[component == k])]
        for k in range(n)
        if (component == k).any()
    ]
    spread.take(np.array(typical), n)
    spread.take(idx[rng.permutation(len(idx))], n)  # empty components: random points
    return np.array(spread.picked)


def hybrid_batch(
    scores: np.ndarray,
    embedding: np.ndarray,
    n: int,
    *,
    groups: np.ndarray,
    xy: np.ndarray,
    min_distance_um: float = 10.0,
    exclude: np.ndarray | None = None,
    random_share: float = HYBRID_RANDOM_SHARE,
    seed: int = 0,
) -> np.ndarray:
    """A diverse uncertain batch for ``1 - random_share`` of ``n``, the rest drawn at
    random among the other unlabeled points: the random half keeps easy, common
    patterns (plain resin) in the labels, which uncertainty alone never asks for."""
    n_random = round(n * random_share)
    active = diverse_batch(
        scores,
        embedding,
        n - n_random,
        groups=groups,
        xy=xy,
        min_distance_um=min_distance_um,
        exclude=exclude,
        seed=seed,
    )
    taken = np.concatenate([active, [] if exclude is None else exclude]).astype(int)
    rest = _eligible(len(scores), taken, np.isfinite(scores))
    rng = np.random.default_rng(seed)
    return np.concatenate([active, rng.choice(rest, min(n_random, len(rest)), replace=False)])


# The registry: one function per strategy name, used by the query and the benchmark.


@dataclass(frozen=True)
class Pool:
    """Every point a strategy may choose from, and what is known of it."""

    confidence: np.ndarray  #: (n, n_classes) confidences of the current model
    #: (n, d) pattern-space coordinates (:func:`pattern_embedding`); None where the
    #: strategy is not one of :data:`USES_EMBEDDING` (it costs 2 s on the full preset)
    embedding: np.ndarray | None
    groups: np.ndarray  #: (n,) sample of each point
    xy: np.ndarray  #: (n, 2) position in um
    valid: np.ndarray  #: (n,) bool, the point has a pattern
    labeled: np.ndarray  #: indices of points already labeled
    score: str = DEFAULT_SCORE  #: uncertainty score of the uncertainty-based strategies
    min_distance_um: float = 10.0
    seed: int = 0
    member_spread: np.ndarray | None = None  #: (n, n_classes) an ensemble's spread

    def spread(self) -> dict:
        """The keyword arguments of the batch functions: where the points are, the
        minimum distance, who is labeled, the seed."""
        return {
            "groups": self.groups,
            "xy": self.xy,
            "min_distance_um": self.min_distance_um,
            "exclude": self.labeled,
            "seed": self.seed,
        }

    def pattern_space(self) -> np.ndarray:
        """The embedding, which the strategies of :data:`USES_EMBEDDING` need."""
        if self.embedding is None:
            raise ValueError("this strategy needs the patterns' embedding; none was given")
        return self.embedding

    def scores(self) -> np.ndarray:
        """(n,) uncertainty of each point, plus 1 where the ensemble's members disagree
        (:func:`xrdmap.trust.disagreeing`: asked first); -inf where there is no pattern."""
        s = uncertainty(self.confidence, self.score)
        s[disagreeing(self.member_spread, len(s))] += 1.0
        s[~self.valid] = -np.inf
        return s


@dataclass(frozen=True)
class Batch:
    """Points chosen, in order, with the class each is asked about and why."""

    picked: np.ndarray  #: point indices
    asked_about: np.ndarray  #: class (column) index per point
    reasons: list[str]


def _least_sure(pool: Pool, picked: np.ndarray) -> np.ndarray:
    return np.argmin(np.abs(pool.confidence[picked] - 0.5), axis=1)


def _uncertain_reasons(pool: Pool, scores: np.ndarray, picked, suffix: str) -> list[str]:
    disagree = disagreeing(pool.member_spread, len(scores))
    return [
        f"members disagree, uncertain ({pool.score} {scores[i] - 1:.2f}){suffix}"
        if disagree[i]
        else f"uncertain ({pool.score} {scores[i]:.2f}){suffix}"
        for i in picked
    ]


def select_uncertainty(pool: Pool, n: int) -> Batch:
    """The ``n`` most uncertain unlabeled points."""
    scores = pool.scores()
    picked = top_uncertain(scores, n, exclude=pool.labeled)
    reasons = _uncertain_reasons(pool, scores, picked, "")
    return Batch(picked, _least_sure(pool, picked), reasons)


def select_diverse(pool: Pool, n: int) -> Batch:
    """``n`` uncertain points from different clusters, spread over samples and maps."""
    scores = pool.scores()
    picked = diverse_batch(scores, pool.pattern_space(), n, **pool.spread())
    reasons = _uncertain_reasons(pool, scores, picked, ", diverse batch")
    return Batch(picked, _least_sure(pool, picked), reasons)


def select_hybrid(pool: Pool, n: int) -> Batch:
    """Half a diverse uncertain batch, half random unlabeled points."""
    scores = pool.scores()
    picked = hybrid_batch(scores, pool.pattern_space(), n, **pool.spread())
    n_active = n - round(n * HYBRID_RANDOM_SHARE)
    reasons = _uncertain_reasons(pool, scores, picked[:n_active], ", diverse batch")
    reasons += [RANDOM_REASON] * (len(picked) - len(reasons))
    return Batch(picked, _least_sure(pool, picked), reasons)


def select_per_class(pool: Pool, n: int) -> Batch:
    """Turns over the classes, each taking its point closest to 0.5."""
    no_pattern = np.flatnonzero(~pool.valid)
    exclude = np.union1d(pool.labeled, no_pattern).astype(int)
    picked, classes = per_class_batch(
        pool.confidence,
        n,
        **{**pool.spread(), "exclude": exclude},
        member_spread=pool.member_spread,
    )
    c = pool.confidence
    reasons = [
        f"turn of {CLASS_NAMES[k]}: confidence {c[i, k]:.2f}"
        + (
            ""
            if pool.member_spread is None
            else f", members' spread {pool.member_spread[i, k]:.2f}"
        )
        + ", the closest to 0.5 among unlabeled points"
        for i, k in zip(picked, classes, strict=True)
    ]
    return Batch(picked, classes, reasons)


def select_random(pool: Pool, n: int) -> Batch:
    """``n`` unlabeled points with a pattern, drawn uniformly."""
    rest = _eligible(len(pool.valid), pool.labeled, pool.valid)
    rng = np.random.default_rng(pool.seed)
    picked = rng.choice(rest, min(n, len(rest)), replace=False)
    return Batch(picked, _least_sure(pool, picked), [RANDOM_REASON] * len(picked))


RANDOM_REASON = "random point (keeps common patterns in the labels)"

#: Every selection strategy by name; the first is the default of the query.
STRATEGIES: dict[str, Callable[[Pool, int], Batch]] = {
    "per-class": select_per_class,
    "hybrid": select_hybrid,
    "diverse": select_diverse,
    "uncertainty": select_uncertainty,
    "random": select_random,
}
DEFAULT_STRATEGY = "per-class"
#: The strategies that cluster points in pattern space (:attr:`Pool.embedding`).
USES_EMBEDDING = frozenset({"hybrid", "diverse"})


def select(strategy: str, pool: Pool, n: int) -> Batch:
    """``n`` points chosen by the strategy named ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](pool, n)
