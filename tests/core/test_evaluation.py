"""Per-class quality: a rare class that is never found shows as such, whatever the
accuracy."""

import numpy as np
import pytest

from xrdmap.classes import CLASS_NAMES
from xrdmap.evaluation import class_metrics


def test_a_rare_class_never_found_has_high_accuracy_but_no_recall():
    n = 1000
    truth = np.zeros((n, len(CLASS_NAMES)), np.uint8)
    truth[:20, 7] = 1  # "Fe without peaks" on 2% of points
    truth[:500, 0] = 1  # Fe3O4 on half of them
    confidence = np.zeros(truth.shape, np.float32)
    confidence[:, 0] = truth[:, 0] * 0.9  # Fe3O4 always right
    confidence[20:30, 7] = 0.7  # ten false alarms, no hit
    m = class_metrics(truth, confidence)
    rare = m["Fe without peaks"]
    assert rare["accuracy"] == pytest.approx(0.97)
    assert rare["recall"] == 0 and rare["f1"] == 0 and rare["precision"] == 0
    assert rare["balanced_accuracy"] == pytest.approx((0 + 970 / 980) / 2)
    assert (rare["tp"], rare["fp"], rare["fn"], rare["tn"]) == (0, 10, 20, 970)
    assert m["Fe3O4"]["f1"] == 1 and m["Fe3O4"]["balanced_accuracy"] == 1
    never = m["Other"]  # no positive, none predicted: recall counts as 1, not 0
    assert never["balanced_accuracy"] == 1 and never["accuracy"] == 1
