"""Train a model version from a store's patterns and a labels table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr
from sklearn.metrics import precision_recall_fscore_support

from models.classifier import DenseClassifier
from models.preprocess import ENVELOPE_BINS, LOG_SCALE, PEAK_GAIN
from models.registry import save_version
from models.synthetic import NoiseModel, PatternSynthesizer, background_library
from xrdmap.classes import CLASS_NAMES
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.labels import LabelsError, labels_sha256
from xrdmap.phases import store_reference_lines
from xrdmap.provenance import software_versions
from xrdmap.store import stored_wavelength_a

TRAINING_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "numpy", "scikit-learn", "zarr")
PREPROCESSING = (
    f"features = [L, {PEAK_GAIN} * (L - envelope(L))] with L = log1p(max(intensity, 0)) / "
    f"{LOG_SCALE} over all 2theta bins of the store and envelope = running mean of the "
    f"running minimum ({ENVELOPE_BINS} bins each); quarantined (NaN) patterns are not used"
)


def labeled_patterns(store: str, labels: pd.DataFrame) -> np.ndarray:
    """(n_labels, nbins) patterns of the labeled points; quarantined points refused."""
    root = zarr.open_group(store, mode="r")
    out = []
    for sample, rows in labels.groupby("sample", sort=False):
        patterns = root[sample]["patterns"]
        status = root[sample]["status"]
        points = rows["point"].to_numpy()
        bad = points[status.get_orthogonal_selection(points) != 0]
        if bad.size:
            raise LabelsError(f"{sample}: point(s) {bad.tolist()} have no valid pattern")
        out.append(pd.DataFrame(patterns.get_orthogonal_selection((points, slice(None))),
                                index=rows.index))  # fmt: skip
    return pd.concat(out).loc[labels.index].to_numpy(dtype=np.float32)


def store_synthesizer(
    store: str, phases: PhasesConfig, *, n_backgrounds: int, seed: int
) -> PatternSynthesizer:
    """A pattern synthesizer on the store's 2theta axis and wavelength, with backgrounds
    and noise taken from ``n_backgrounds`` valid points drawn at random over all samples."""
    root = zarr.open_group(store, mode="r")
    samples = root.attrs["xrdmap"]["samples"]
    sizes = np.array([root[s]["status"].shape[0] for s in samples])
    picks = np.random.default_rng(seed).choice(sizes.sum(), min(n_backgrounds, sizes.sum()), False)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    patterns, sigma = [], []
    for k, sample in enumerate(samples):
        points = np.sort(picks[(picks >= starts[k]) & (picks < starts[k + 1])] - starts[k])
        if points.size == 0:
            continue
        group = root[sample]
        points = points[group["status"].get_orthogonal_selection(points) == 0]
        patterns.append(group["patterns"].get_orthogonal_selection((points, slice(None))))
        sigma.append(group["sigma"].get_orthogonal_selection((points, slice(None))))
    patterns, sigma = np.concatenate(patterns), np.concatenate(sigma)
    return PatternSynthesizer(
        root[samples[0]]["tth_deg"][:], store_reference_lines(store, phases), phases,
        stored_wavelength_a(root), background_library(patterns),
        NoiseModel.from_patterns(patterns, sigma),
    )  # fmt: skip


def synthetic_patterns(
    store: str, phases: PhasesConfig, cfg: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The pre-training set of ``cfg`` for this store (None when switched off)."""
    if cfg.pretrain_patterns == 0:
        return None
    synth = store_synthesizer(store, phases, n_backgrounds=cfg.pretrain_backgrounds, seed=seed)
    return synth.draw(cfg.pretrain_patterns, np.random.default_rng(seed))


def split_indices(n: int, proportions: tuple[int, int, int], seed: int):
    """Random train / validation / test indices in the given proportions (e.g. 81/29/29)."""
    order = np.random.default_rng(seed).permutation(n)
    total = sum(proportions)
    n_train = round(n * proportions[0] / total)
    n_val = max(1, round(n * proportions[1] / total))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def class_metrics(truth: np.ndarray, confidence: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class accuracy, precision, recall, F1 and confusion counts at 0.5."""
    pred = confidence >= 0.5
    out = {}
    for i, name in enumerate(CLASS_NAMES):
        t, p = truth[:, i].astype(bool), pred[:, i]
        precision, recall, f1, _ = precision_recall_fscore_support(
            t, p, average="binary", zero_division=0
        )
        out[name] = {
            "accuracy": float((t == p).mean()),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "tp": int((t & p).sum()),
            "fp": int((~t & p).sum()),
            "fn": int((t & ~p).sum()),
            "tn": int((~t & ~p).sum()),
        }
    return out


def train_version(
    store: str, labels: pd.DataFrame, cfg: TrainConfig, phases: PhasesConfig
) -> tuple[str, dict]:
    """Pre-train on synthetic patterns of ``phases``, fit on the labels' train split,
    score its test split, write a registry version."""
    patterns = labeled_patterns(store, labels)
    y = labels[list(CLASS_NAMES)].to_numpy(dtype=np.uint8)
    train, val, test = split_indices(len(labels), cfg.split, cfg.seed)
    synthetic = synthetic_patterns(store, phases, cfg, cfg.seed)
    clf = DenseClassifier(cfg, seed=cfg.seed).fit(
        patterns[train], y[train], patterns[val], y[val], synthetic=synthetic
    )
    metrics = class_metrics(y[test], clf.predict_proba(patterns[test])) if len(test) else {}
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
            "generator": "models/synthetic.py (CIF reference lines of the phases below)",
            "phases": {name: ph.cif for name, ph in phases.phases.items()},
        },
        "epochs_trained": len(clf.history_["loss"]),
        "test_metrics": metrics,
        "settings": cfg.model_dump(),
        "store": store,
        "store_settings_sha256": zarr.open_group(store, mode="r").attrs["xrdmap"][
            "settings_sha256"
        ],
        "software": software_versions(TRAINING_PACKAGES),
    }
    version = save_version(cfg.registry_dir, clf.model_, card)
    return version, card
