"""Which points an expert should label next: uncertainty scores and diverse batches.

All functions are pure (arrays in, indices out) and seeded.

Scores, from (n, classes) confidences in 0..1, each in 0..1 with 1 = most unsure:

- ``least_confidence``: the worst class, ``1 - min_k |2 c_k - 1|`` (1 when any class
  sits at 0.5);
- ``margin``: the mean over classes of ``1 - |2 c_k - 1|``;
- ``entropy``: the mean binary entropy over classes, in bits.

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

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

SCORES = ("least_confidence", "margin", "entropy")
#: Candidate pool of a diverse batch, as a multiple of the batch size.
POOL_FACTOR = 10
#: At most this share of a batch (rounded up, at least 2 points) from one sample.
MAX_SHARE_PER_SAMPLE = 0.25
#: Share of a hybrid batch drawn at random (the rest: a diverse uncertain batch first).
HYBRID_RANDOM_SHARE = 0.5
#: Points used to fit the embedding and the cold-start mixture (speed; seeded).
FIT_POINTS = 20000


def uncertainty(confidence: np.ndarray, method: str = "least_confidence") -> np.ndarray:
    """(n,) uncertainty of each row of confidences; NaN rows (no pattern) score -inf."""
    c = np.asarray(confidence, dtype=np.float64)
    sure = np.abs(2 * c - 1)
    if method == "least_confidence":
        score = 1 - sure.min(axis=1)
    elif method == "margin":
        score = 1 - sure.mean(axis=1)
    elif method == "entropy":
        p = np.clip(c, 1e-12, 1 - 1e-12)
        score = (-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).mean(axis=1)
    else:
        raise ValueError(f"unknown uncertainty score {method!r}; choose from {SCORES}")
    return np.where(np.isnan(score), -np.inf, score)


def pattern_embedding(features: np.ndarray, *, n_components: int = 16, seed: int = 0):
    """(n, n_components) PCA coordinates of pattern features (fitted on a subsample)."""
    x = np.nan_to_num(np.asarray(features, dtype=np.float32))
    rng = np.random.default_rng(seed)
    fit = x[rng.choice(len(x), min(FIT_POINTS, len(x)), replace=False)]
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
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` point indices, taken in turns over the classes (a seeded random class order
    each turn): on its turn a class adds its unlabeled point with confidence closest to
    0.5 that the spread rules accept (per-sample cap, ``min_distance_um`` apart).
    Returns the indices in the order taken and, for each, the class (column) whose turn
    took it; NaN rows (no pattern) are never taken."""
    c = np.asarray(confidence, dtype=np.float64)
    idx = _eligible(len(c), exclude, ~np.isnan(c).any(axis=1))
    n = min(n, len(idx))
    closeness = np.abs(2 * c[idx] - 1)  # 0 = undecided
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
    fit = embedding[rng.choice(idx, min(FIT_POINTS, len(idx)), replace=False)]
    gmm = GaussianMixture(n, covariance_type="diag", random_state=seed).fit(fit)
    density = gmm.score_samples(embedding[idx])
    component = gmm.predict(embedding[idx])
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
    active = diverse_batch(scores, embedding, n - n_random, groups=groups, xy=xy,
                           min_distance_um=min_distance_um, exclude=exclude, seed=seed)  # fmt: skip
    taken = np.concatenate([active, [] if exclude is None else exclude]).astype(int)
    rest = _eligible(len(scores), taken, np.isfinite(scores))
    rng = np.random.default_rng(seed)
    return np.concatenate([active, rng.choice(rest, min(n_random, len(rest)), replace=False)])
