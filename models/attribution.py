"""Why a call: integrated gradients of each class's confidence over the 2theta bins.

Integrated gradients (Sundararajan et al. 2017) attribute ``f(x) - f(x0)`` to the input
features along the straight path from a baseline ``x0`` to the pattern ``x``; the
attributions add up to that difference (completeness). The baseline is the pattern's
own smooth lower envelope (:func:`xrdmap.features.lower_envelope`): the same
background without its lines, so the attributions say which lines drove a class, not
which background level. The classifier's two feature blocks (log level, peaks above
the envelope) of a bin are added, so each 2theta bin gets one number per class:
positive where the pattern pushes the class's confidence up.
"""

from __future__ import annotations

import numpy as np

from xrdmap.features import lower_envelope, pattern_features

#: Points on the path from the baseline (midpoint rule).
STEPS = 48


def baseline_patterns(patterns: np.ndarray) -> np.ndarray:
    """The patterns without their lines: their smooth lower envelopes."""
    return lower_envelope(np.clip(np.asarray(patterns, dtype=np.float64), 0, None))


def integrated_gradients(model, patterns: np.ndarray, steps: int = STEPS) -> np.ndarray:
    """(n, n_classes, nbins) attributions of each class's confidence (the mean over the
    ensemble's members) to each 2theta bin of ``patterns`` (n, nbins)."""
    import tensorflow as tf

    x = pattern_features(patterns).astype(np.float32)
    x0 = pattern_features(baseline_patterns(patterns)).astype(np.float32)
    n, nbins = np.asarray(patterns).shape
    alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32)
    # every point's path in one batch: (n * steps, features); each row is independent
    path = tf.convert_to_tensor(
        (x0[:, None, :] + alphas[None, :, None] * (x - x0)[:, None, :]).reshape(n * steps, -1)
    )
    with tf.GradientTape() as tape:
        tape.watch(path)
        conf = model(path, training=False)
        if len(conf.shape) == 3:  # (rows, members, classes): the ensemble's mean
            conf = tf.reduce_mean(conf, axis=1)
    grads = tape.batch_jacobian(conf, path).numpy()  # (rows, classes, features)
    mean = grads.reshape(n, steps, *grads.shape[1:]).mean(axis=1)  # (n, classes, features)
    attribution = (x - x0)[:, None, :] * mean
    return attribution[..., :nbins] + attribution[..., nbins:]


def confidences(model, patterns: np.ndarray) -> np.ndarray:
    """(2, n, n_classes): the confidences of the patterns and of their baselines (what
    the attributions of :func:`integrated_gradients` add up to, as their difference)."""
    from models.predict import ensemble_output

    out = []
    for rows in (patterns, baseline_patterns(patterns)):
        found = np.asarray(model.predict(pattern_features(rows), verbose=0))
        out.append(ensemble_output(found, np.ones(len(rows), bool), found.shape[-1])[0])
    return np.stack(out)


def queue_attributions(
    store: str, registry: str, version: str, points: list[tuple[str, int]]
) -> dict[tuple[str, int], np.ndarray] | None:
    """Attributions (n_classes, nbins) of model ``version`` for each queued (sample,
    point); ``None`` when ``registry`` does not hold the very model whose confidences
    the store holds (same version name, same sha256), or when the store is outside the
    model's domain (its patterns would need resampling: the bins would not be the
    store's)."""
    from models.predict import domain_mapping
    from models.registry import load_model, read_card
    from xrdmap.domain import DomainError
    from xrdmap.errors import RegistryError
    from xrdmap.store import confidence_attributes, open_store, sample_group

    try:
        card = read_card(registry, version)
    except RegistryError:
        return None
    first = points[0][0] if points else None
    if first is None or card.get("model_sha256") != confidence_attributes(
        open_store(store), first, version
    ).get("model_sha256"):
        return None
    try:
        if domain_mapping(store, card, allow_resample=False) is not None:
            return None
    except DomainError:
        return None
    model = load_model(registry, version)
    root = open_store(store)
    patterns = np.stack([sample_group(root, s)["patterns"][p] for s, p in points])
    valid = np.isfinite(patterns).all(axis=1)
    out: dict[tuple[str, int], np.ndarray] = {}
    if valid.any():
        values = integrated_gradients(model, patterns[valid])
        for key, value in zip(
            [pt for pt, ok in zip(points, valid, strict=True) if ok], values, strict=True
        ):
            out[key] = value
    return out
