"""Development helper: labels drawn from a simulated beamtime's ground truth, as an
expert would give them (the nine classes of what is visible), to repeat the reference
paper's few-label experiment. Marked as simulated in the labels table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from xrdmap.classes import CLASS_NAMES


def load_truth(truth_dir: str | Path, samples: list[str]) -> pd.DataFrame:
    """Ground truth of ``samples`` (in that order), with a ``sample`` column."""
    frames = []
    for name in samples:
        table = pd.read_csv(Path(truth_dir) / f"{name}.csv")
        table.insert(0, "sample", name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def draw_expert_labels(
    truth_dir: str | Path, samples: list[str], n: int, *, seed: int
) -> pd.DataFrame:
    """``n`` points drawn uniformly at random over all samples, labeled from the truth.

    Columns: sample, point, one 0/1 column per class, labeler, time, source.
    """
    truth = load_truth(truth_dir, samples)
    rows = np.random.default_rng(seed).choice(len(truth), size=n, replace=False)
    picked = truth.iloc[np.sort(rows)]
    labels = picked[["sample", "point", *CLASS_NAMES]].reset_index(drop=True)
    labels["labeler"] = "simulator"
    labels["time"] = datetime.now(UTC).isoformat(timespec="seconds")
    labels["source"] = "simulated ground truth"
    return labels
