"""How good a classifier's answers are, class by class, against expert labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from xrdmap.calibration import expected_calibration_error
from xrdmap.classes import CLASS_NAMES, THRESHOLD
from xrdmap.store import StoreError, latest_predicted, open_store, read_confidences


def class_metrics(truth: np.ndarray, confidence: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class accuracy, balanced accuracy, precision, recall, F1 and confusion counts
    at :data:`THRESHOLD`. Accuracy alone hides a rare class that is never found (0.98
    for a class on 2% of points that the model never calls); balanced accuracy (the mean
    of the recalls of positives and negatives) and F1 do not.

    Parameters
    ----------
    truth : (n, n_classes) array of 0/1
        The expert's answers.
    confidence : (n, n_classes) float array
        The model's confidences, 0..1.

    Returns
    -------
    dict
        Class name -> {accuracy, ece, balanced_accuracy, precision, recall, f1, tp, fp,
        fn, tn}; a recall with nothing to recall counts as 1 in the balanced accuracy;
        ece is the expected calibration error (:mod:`xrdmap.calibration`).
    """
    pred = confidence >= THRESHOLD
    out = {}
    for i, name in enumerate(CLASS_NAMES):
        t, p = truth[:, i].astype(bool), pred[:, i]
        precision, recall, f1, _ = precision_recall_fscore_support(
            t, p, average="binary", zero_division=0
        )
        tp, fp, fn, tn = (int(v.sum()) for v in (t & p, ~t & p, t & ~p, ~t & ~p))
        tpr = tp / (tp + fn) if tp + fn else 1.0
        tnr = tn / (tn + fp) if tn + fp else 1.0
        out[name] = {
            "accuracy": float((t == p).mean()),
            "ece": expected_calibration_error(t, confidence[:, i]),
            "balanced_accuracy": float((tpr + tnr) / 2),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }
    return out


def evaluate_store(
    store: str, labels: pd.DataFrame, version: str | None = None
) -> tuple[str, dict[str, dict[str, float]]]:
    """(version, per-class metrics) of the confidences stored for model ``version``
    (default: the latest predicted) against the labeled points of ``labels``."""
    version = version or latest_predicted(store)
    if not version:
        raise StoreError(f"{store}: no predictions yet (run xrdmap predict)")
    root = open_store(store)
    conf = []
    for sample, rows in labels.groupby("sample", sort=False):
        try:
            found = read_confidences(root, sample, version)[rows["point"].to_numpy()]
        except StoreError:
            raise StoreError(
                f"{store}: no confidences of model {version} (run xrdmap predict)"
            ) from None
        conf.append(pd.DataFrame(found, index=rows.index))
    values = pd.concat(conf).loc[labels.index].to_numpy()
    return version, class_metrics(labels[list(CLASS_NAMES)].to_numpy(), values)
