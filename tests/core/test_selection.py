"""Selection of the points to relabel: scores, diverse batches, cold start (pure)."""

import numpy as np
import pytest

from xrdmap.active.scores import uncertainty
from xrdmap.active.strategies import (
    cold_start_batch,
    diverse_batch,
    hybrid_batch,
    pattern_embedding,
    per_class_batch,
    top_uncertain,
)


def test_scores_rank_unsure_points_first():
    conf = np.array(
        [
            [0.99, 0.01, 0.98],  # sure of everything
            [0.99, 0.50, 0.98],  # one class at 0.5
            [0.70, 0.30, 0.65],  # mildly unsure everywhere
            [np.nan, np.nan, np.nan],  # no pattern
        ]
    )
    lc = uncertainty(conf, "least_confidence")
    assert lc[1] == pytest.approx(1.0) and lc[0] < lc[2] < lc[1] and lc[3] == -np.inf
    mg = uncertainty(conf, "margin")
    assert mg[0] < mg[1] and mg[0] < mg[2]
    ent = uncertainty(conf, "entropy")
    assert ent[0] < ent[1] and ent[0] < ent[2] and ent[:3].min() >= 0 and ent[:3].max() <= 1
    assert uncertainty(np.full((1, 9), 0.5), "entropy")[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown uncertainty score 'gini'"):
        uncertainty(conf, "gini")


def _clusters(rng, n_per=200):
    """Three pattern clusters; the most uncertain points all sit in cluster 0 on one
    sample, packed in a small area (a rust rim)."""
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    emb = np.concatenate([c + rng.normal(size=(n_per, 2)) for c in centres])
    cluster = np.repeat(np.arange(3), n_per)
    scores = rng.uniform(0.0, 0.5, size=len(emb))
    scores[cluster == 0] += 0.5
    groups = np.where(cluster == 0, "S01", rng.choice(["S02", "S03", "S04"], len(emb)))
    xy = rng.uniform(0, 400, size=(len(emb), 2))
    xy[cluster == 0] = rng.uniform(0, 30, size=((cluster == 0).sum(), 2))
    return emb, cluster, scores, groups, xy


def test_uncertainty_only_piles_up_where_diverse_spreads():
    rng = np.random.default_rng(0)
    emb, cluster, scores, groups, xy = _clusters(rng)
    only = top_uncertain(scores, 12)
    assert set(cluster[only]) == {0}
    picked = diverse_batch(scores, emb, 12, groups=groups, xy=xy, min_distance_um=10, seed=0)
    assert len(picked) == 12 and len(set(picked)) == 12
    assert len(set(cluster[picked])) >= 2 and (groups[picked] == "S01").sum() <= 3
    for s in set(groups[picked]):
        p = xy[picked[groups[picked] == s]]
        d = np.hypot(*(p[:, None] - p[None]).transpose(2, 0, 1))
        assert d[np.triu_indices(len(p), 1)].min(initial=np.inf) >= 10
    again = diverse_batch(scores, emb, 12, groups=groups, xy=xy, min_distance_um=10, seed=0)
    np.testing.assert_array_equal(picked, again)


def test_labeled_and_invalid_points_are_never_picked():
    rng = np.random.default_rng(1)
    emb, _, scores, groups, xy = _clusters(rng)
    labeled = top_uncertain(scores, 50)
    scores[7] = -np.inf  # no pattern
    picked = diverse_batch(scores, emb, 10, groups=groups, xy=xy, exclude=labeled)
    assert not set(picked) & set(labeled) and 7 not in picked
    assert not set(top_uncertain(scores, 10, exclude=labeled)) & set(labeled)


def test_cold_start_takes_one_point_per_pattern_family():
    rng = np.random.default_rng(2)
    centres = rng.uniform(-50, 50, size=(5, 4))
    emb = np.concatenate([c + rng.normal(size=(300, 4)) for c in centres])
    family = np.repeat(np.arange(5), 300)
    groups = rng.choice([f"S{i:02d}" for i in range(15)], len(emb))
    xy = rng.uniform(0, 1000, size=(len(emb), 2))
    picked = cold_start_batch(emb, 5, groups=groups, xy=xy, seed=0)
    assert sorted(family[picked]) == [0, 1, 2, 3, 4]


def test_cold_start_copes_with_a_family_of_near_identical_patterns():
    """Resin-only or bare-steel points are nearly the same pattern: in float32 the
    mixture fit gave such a family a negative variance and failed ("ill-defined
    empirical covariance", `xrdmap query` on the full preset with no model)."""
    rng = np.random.default_rng(4)
    emb = np.concatenate(
        [rng.normal(0.0, 1.0, (3000, 16)), rng.normal(5.0, 0.001, (3000, 16))]
    ).astype(np.float32) + np.float32(100.0)  # PCA coordinates are float32
    groups = np.repeat(["S01", "S02"], 3000)
    xy = rng.uniform(0, 1000, size=(len(emb), 2))
    picked = cold_start_batch(emb, 3, groups=groups, xy=xy, seed=0)
    assert len(set(picked)) == 3 and (picked >= 3000).any() and (picked < 3000).any()


def test_embedding_is_seeded_and_low_dimensional():
    x = np.random.default_rng(3).normal(size=(500, 40)).astype(np.float32)
    a, b = (
        pattern_embedding(x, n_components=8, seed=1),
        pattern_embedding(x, n_components=8, seed=1),
    )
    assert a.shape == (500, 8)
    np.testing.assert_array_equal(a, b)


def test_hybrid_batch_is_half_uncertain_half_random():
    rng = np.random.default_rng(4)
    emb, _, scores, groups, xy = _clusters(rng)
    labeled = np.arange(5)
    picked = hybrid_batch(scores, emb, 10, groups=groups, xy=xy, exclude=labeled, seed=0)
    assert len(picked) == 10 and len(set(picked)) == 10 and not set(picked) & set(labeled)
    active = diverse_batch(scores, emb, 5, groups=groups, xy=xy, exclude=labeled, seed=0)
    np.testing.assert_array_equal(picked[:5], active)
    assert scores[picked[5:]].mean() < scores[picked[:5]].mean()  # the random half


def test_per_class_batch_gives_every_class_its_turn():
    """Class 0 is hard (many points near 0.5), class 2 is rare and never predicted
    (all below 0.5): one score over all classes spends the batch on class 0, turns over
    the classes also ask class 1's and class 2's most doubtful points."""
    rng = np.random.default_rng(5)
    n = 900
    conf = np.column_stack(
        [
            rng.uniform(0.3, 0.7, n),  # hard class
            np.where(rng.random(n) < 0.5, 0.02, 0.97),  # easy class ...
            rng.uniform(0.0, 0.3, n),  # rare class, never above 0.5
        ]
    )
    conf[10, 1] = 0.45  # ... with one doubtful point
    conf[20] = np.nan  # no pattern
    groups = rng.choice(["S01", "S02", "S03"], n)
    xy = rng.uniform(0, 1000, size=(n, 2))
    labeled = np.argsort(-conf[:, 2])[:3]  # the three most likely rare positives: labeled
    picked, classes = per_class_batch(conf, 9, groups=groups, xy=xy, exclude=labeled, seed=0)
    assert len(picked) == 9 and len(set(picked)) == 9 and sorted(np.bincount(classes)) == [3, 3, 3]
    assert 10 in picked[classes == 1] and 20 not in picked and not set(picked) & set(labeled)
    rare_next = np.argsort(-np.nan_to_num(conf[:, 2]))[3:6]
    assert sorted(picked[classes == 2]) == sorted(rare_next)
    assert len(set(top_uncertain(uncertainty(conf), 9)) & set(picked[classes == 2])) == 0
    again = per_class_batch(conf, 9, groups=groups, xy=xy, exclude=labeled, seed=0)
    np.testing.assert_array_equal(picked, again[0])


def test_a_pool_without_embedding_serves_the_strategies_that_need_none():
    """The query skips the embedding (2 s on the full preset) unless the strategy
    clusters in pattern space; such a strategy without one is refused, not guessed."""
    from xrdmap.active.strategies import STRATEGIES, USES_EMBEDDING, Pool, select

    rng = np.random.default_rng(7)
    n = 300
    conf = rng.random((n, 9))
    pool = Pool(
        conf,
        None,
        rng.choice(["S01", "S02"], n),
        rng.uniform(0, 500, (n, 2)),
        np.ones(n, bool),
        np.array([], int),
    )
    for name in STRATEGIES:
        if name in USES_EMBEDDING:
            with pytest.raises(ValueError, match="needs the patterns' embedding"):
                select(name, pool, 6)
        else:
            assert len(select(name, pool, 6).picked) == 6
