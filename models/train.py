"""Train a model version from a store's patterns and a labels table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ensemble import CalibratedEnsemble
from models.registry import save_version
from xrdmap.calibration import reliability
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.evaluation import class_metrics
from xrdmap.features import ENVELOPE_BINS, LOG_SCALE, PEAK_GAIN, intensity_reference
from xrdmap.label_store import labeled_patterns
from xrdmap.labels import labels_sha256
from xrdmap.provenance import software_versions
from xrdmap.store import open_store, settings_sha256, store_domain
from xrdmap.synthetic import synthetic_patterns

TRAINING_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "numpy", "scikit-learn", "zarr")
PREPROCESSING = (
    f"features = [L, {PEAK_GAIN} * (L - envelope(L))] with L = log1p(max(intensity, 0)) / "
    f"{LOG_SCALE} over all 2theta bins of the store and envelope = running mean of the "
    f"running minimum ({ENVELOPE_BINS} bins each); quarantined (NaN) patterns are not used"
)


def split_indices(n: int, proportions: tuple[int, int, int], seed: int):
    """Random train / validation / test indices in the given proportions (e.g. 81/29/29)."""
    order = np.random.default_rng(seed).permutation(n)
    total = sum(proportions)
    n_train = round(n * proportions[0] / total)
    n_val = max(1, round(n * proportions[1] / total))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def train_version(
    store: str, labels: pd.DataFrame, cfg: TrainConfig, phases: PhasesConfig
) -> tuple[str, dict]:
    """Pre-train on synthetic patterns of ``phases``, fine-tune the ensemble's members on
    the labels' train split, calibrate on the validation split, score the test split,
    write a registry version."""
    patterns = labeled_patterns(store, labels)
    y = labels[list(CLASS_NAMES)].to_numpy(dtype=np.uint8)
    train, val, test = split_indices(len(labels), cfg.split, cfg.seed)
    synthetic = synthetic_patterns(store, phases, cfg, cfg.seed)
    clf = CalibratedEnsemble.from_config(cfg, seed=cfg.seed).fit(
        patterns[train], y[train], patterns[val], y[val], synthetic=synthetic
    )
    test_conf = clf.predict_proba(patterns[test]) if len(test) else None
    metrics = class_metrics(y[test], test_conf) if test_conf is not None else {}
    keys = labels[["sample", "point"]]
    card = {
        "classes": list(CLASS_NAMES),
        "preprocessing": PREPROCESSING,
        "n_bins": int(patterns.shape[1]),
        "labels": {
            "count": len(labels),
            "sha256": labels_sha256(labels),
            "sources": sorted(labels["source"].unique().tolist()),
            "labelers": sorted(labels["labeler"].unique().tolist()),
        },
        "split": {
            name: keys.iloc[idx].to_dict(orient="records")
            for name, idx in (("train", train), ("validation", val), ("test", test))
        },
        "pretraining": {
            "synthetic_patterns": cfg.pretrain_patterns,
            "generator": "xrdmap/synthetic.py (CIF reference lines of the phases below)",
            "phases": {name: ph.cif for name, ph in phases.phases.items()},
        },
        "epochs_trained": len(clf.history_["loss"]),
        "ensemble": {
            "members": clf.n_members,
            "seeds": [cfg.seed + k for k in range(clf.n_members)],
            "temperature": clf.temperature_,
            "calibrated_on": "the validation split (one temperature for every class)",
        },
        "test_metrics": metrics,
        "test_reliability": {
            name: reliability(y[test][:, i], test_conf[:, i]) for i, name in enumerate(CLASS_NAMES)
        }
        if test_conf is not None
        else {},
        "settings": cfg.model_dump(),
        "store": store,
        "store_settings_sha256": settings_sha256(open_store(store)),
        "domain": store_domain(open_store(store)).to_record(),
        "intensity": intensity_reference(patterns[train]),
        "software": software_versions(TRAINING_PACKAGES),
    }
    version = save_version(cfg.registry_dir, clf.model_, card)
    return version, card
