"""The classifier's preprocessing, augmentation and Keras model (no Prefect)."""

import logging
from logging.handlers import BufferingHandler

import numpy as np
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.features import LOG_SCALE, augment, pattern_features


def test_features_keep_level_and_compress_spots():
    patterns = np.array([[0.0, 10.0, 1000.0, np.nan], [-3.0, 40.0, 40.0, 40.0]])
    x = pattern_features(patterns)
    assert x.dtype == np.float32
    assert x[0, 0] == 0 and x[1, 0] == 0  # negative intensities clip to zero
    assert x[0, 2] == pytest.approx(np.log1p(1000) / LOG_SCALE)
    assert np.isnan(x[0, 3])
    assert x[1, 1] > x[0, 1]  # fluorescence level is kept


def test_peak_block_sits_on_a_flat_zero():
    flat = np.full((1, 300), 40.0)
    peaked = flat.copy()
    peaked[0, 150] = 400.0
    x_flat, x_peak = pattern_features(flat), pattern_features(peaked)
    assert x_flat.shape == (1, 600)
    np.testing.assert_allclose(x_flat[0, 300:], 0, atol=1e-6)  # no peaks on a flat level
    assert x_peak[0, 450] > 1 and abs(x_peak[0, 300]) < 1e-6


def test_augment_keeps_labels_and_varies_patterns():
    rng = np.random.default_rng(0)
    x = rng.random((5, 300)).astype(np.float32)
    y = rng.integers(0, 2, (5, 9))
    xa, ya = augment(x, y, rng, copies=4)
    assert xa.shape == (25, 300) and ya.shape == (25, 9)
    np.testing.assert_array_equal(xa[:5], x)  # originals first, unchanged
    np.testing.assert_array_equal(ya[5:9], np.repeat(y[:1], 4, axis=0))
    assert not np.allclose(xa[5], x[0])
    assert np.abs(xa[5:] - np.repeat(x, 4, axis=0)).mean() < 0.5  # plausible variations
    same = augment(x, y, rng, copies=0)
    assert same[0] is x


def test_positive_weights_count_the_rows_trained_on_unknowns_aside():
    from models.classifier import positive_weights

    expert = np.array([[1, 0, 0]] * 2 + [[0, 0, 1]] * 8)  # class 1: no positive labeled
    np.testing.assert_allclose(positive_weights(expert, 10.0), [4.0, 10.0, 1.0])
    rehearsal = np.array([[1, 1, -1]] * 5 + [[0, 0, -1]] * 15)  # class 2 unknown there
    both = positive_weights(np.concatenate([expert, rehearsal]), 10.0)
    np.testing.assert_allclose(both, [23 / 7, 25 / 5, 1.0])  # not 22/8 on class 2


def test_fine_tuning_runs_fixed_epochs_and_scratch_needs_validation():
    from models.classifier import DenseClassifier
    from xrdmap.config import load_train

    rng = np.random.default_rng(2)
    x, y = _toy_patterns(rng, 60)
    settings = load_train().model_copy(
        update={
            "finetune_epochs": 3,
            "pretrain_epochs": 1,
            "augment_copies": 1,
            "rehearsal_patterns": 20,
        }
    )
    synthetic = (x[40:], np.where(y[40:] == 1, 1, -1))  # any patterns, some unknown labels
    clf = DenseClassifier.from_config(settings, seed=0).pretrain(synthetic)
    clf.fit(x[:30], y[:30])
    assert len(clf.history_["loss"]) == 3 and "val_loss" not in clf.history_
    clf.fit(x[:30], y[:30], x[30:40], y[30:40])
    assert len(clf.history_["val_loss"]) == 3  # scored, never used to stop
    with pytest.raises(ValueError, match="from scratch needs validation"):
        DenseClassifier.from_config(settings, seed=0).fit(x[:30], y[:30])


def _toy_patterns(rng, n):
    """Two peaks on a background: class k present <=> peak k visible."""
    tth = np.linspace(10, 40, 300)
    y = rng.integers(0, 2, (n, len(CLASS_NAMES)))
    y[:, 2:] = 0
    base = 20 + rng.normal(0, 1, (n, 300))
    peaks = [np.exp(-0.5 * ((tth - c) / 0.3) ** 2) for c in (17.0, 28.4)]
    patterns = base + 200 * y[:, :1] * peaks[0] + 200 * y[:, 1:2] * peaks[1]
    return patterns, y


@pytest.mark.slow
def test_dense_classifier_learns_and_is_reproducible():
    from models.classifier import DenseClassifier
    from xrdmap.config import load_train

    rng = np.random.default_rng(1)
    x, y = _toy_patterns(rng, 120)
    settings = load_train().model_copy(
        update={"max_epochs": 40, "patience": 10, "augment_copies": 2}
    )
    a = DenseClassifier.from_config(settings, seed=3).fit(x[:80], y[:80], x[80:100], y[80:100])
    assert a.steps_per_execution > 1  # Keras runs several training steps per call
    one_step = {**a.get_params(), "steps_per_execution": 1}
    b = DenseClassifier(**one_step).fit(x[:80], y[:80], x[80:100], y[80:100])
    conf = a.predict_proba(x[100:])
    assert conf.shape == (20, len(CLASS_NAMES)) and ((conf >= 0) & (conf <= 1)).all()
    assert ((conf[:, :2] >= 0.5) == y[100:, :2]).mean() >= 0.95
    # seeded, and the same weights to the bit whether each call runs one step or several
    for mine, theirs in zip(a.model_.get_weights(), b.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(conf, b.predict_proba(x[100:]))
    with_nan = x[100:102].copy()
    with_nan[0, 5] = np.nan
    out = a.predict_proba(with_nan)
    assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()


def test_expert_labels_from_truth(tiny_beamtime):
    from xrdmap.simulate.expert import draw_expert_labels

    samples = ["A_urban", "B_marine"]
    a = draw_expert_labels(tiny_beamtime.truth_dir, samples, 30, seed=5)
    b = draw_expert_labels(tiny_beamtime.truth_dir, samples, 30, seed=5)
    assert len(a) == 30 and list(a.columns[:2]) == ["sample", "point"]
    assert set(CLASS_NAMES) <= set(a.columns) and (a["source"] == "simulated ground truth").all()
    assert a[["sample", "point"]].equals(b[["sample", "point"]])
    assert not a.duplicated(["sample", "point"]).any()


@pytest.mark.slow
def test_the_ensemble_is_one_network_of_calibrated_members(tmp_path, monkeypatch):
    """Members share the pre-training, differ by seed; the saved network (one file,
    safe mode) gives each member's calibrated confidence; their mean is the confidence."""
    import keras

    from models.ensemble import CalibratedEnsemble
    from models.predict import ensemble_output
    from xrdmap.config import load_train

    rng = np.random.default_rng(4)
    x, y = _toy_patterns(rng, 120)
    settings = load_train().model_copy(
        update={
            "pretrain_epochs": 2,
            "finetune_epochs": 5,
            "augment_copies": 1,
            "rehearsal_patterns": 20,
            "ensemble_members": 5,
        }
    )
    synthetic = (x[100:], np.where(y[100:] == 1, 1, -1))
    # TensorFlow counts retracing over a process's life: count from zero, as in a new
    # `xrdmap train`, not after the predictions of this worker's earlier tests
    from tensorflow.python.eager.polymorphic_function import polymorphic_function as tf_fn

    fresh = tf_fn._FrequentTracingDetectorManager()
    monkeypatch.setattr(tf_fn, "_frequent_tracing_detector_manager", fresh)
    tf_log = logging.getLogger("tensorflow")
    handler = BufferingHandler(capacity=10_000)
    tf_log.addHandler(handler)
    try:
        ens = CalibratedEnsemble.from_config(settings, seed=7).fit(
            x[:70], y[:70], x[70:100], y[70:100], synthetic=synthetic
        )
    finally:
        tf_log.removeHandler(handler)
    # the members' logits come from one network, not five (TensorFlow's warning)
    assert not [r for r in handler.buffer if "retracing" in r.getMessage()]
    assert [m.seed for m in ens.members_] == [7, 8, 9, 10, 11]
    assert 0.05 <= ens.temperature_ <= 20
    members = ens.predict_members(x[100:])
    assert members.shape == (20, 5, len(CLASS_NAMES))
    assert np.abs(members[:, 0] - members[:, 1]).max() > 1e-4  # the members differ
    ens.model_.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    found = loaded.predict(pattern_features(x[100:]), verbose=0)
    np.testing.assert_allclose(found, members, atol=1e-5)
    col = {c: i for i, c in enumerate(CLASS_NAMES)}
    ferrite_free = (1 - found[..., col["Fe(BCC)"]]) * (1 - found[..., col["Fe(FCC)"]])
    assert (found[..., col["Fe without peaks"]] <= ferrite_free + 1e-6).all()
    conf, spread = ensemble_output(found, np.ones(20, bool), len(CLASS_NAMES))
    np.testing.assert_allclose(conf, ens.predict_proba(x[100:]), atol=1e-5)
    np.testing.assert_allclose(spread, members.std(axis=1), atol=1e-5)


def test_the_exclusion_layer_gates_and_leaves_the_excluding_classes_untaught():
    """ExcludedBy gives what numpy gives; the gradient of the excluded class reaches its
    own input only (the excluding classes learn from their own labels)."""
    import tensorflow as tf

    from models.network import ExcludedBy
    from xrdmap.classes import apply_exclusions, exclusions

    rules = exclusions()
    (fwp, (bcc, fcc)) = rules[0]
    conf = tf.constant(np.random.default_rng(5).random((6, len(CLASS_NAMES))), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(conf)
        out = ExcludedBy(rules)(conf)
        target = tf.reduce_sum(out[:, fwp])
    np.testing.assert_allclose(out.numpy(), apply_exclusions(conf.numpy(), rules), rtol=1e-6)
    grad = tape.gradient(target, conf).numpy()
    assert (grad[:, [bcc, fcc]] == 0).all()
    c = conf.numpy()
    np.testing.assert_allclose(grad[:, fwp], (1 - c[:, bcc]) * (1 - c[:, fcc]), rtol=1e-6)
