"""Prefect tasks of the active-learning rounds: wait for the expert, train a version."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models.train import train_version
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.label_store import labeled_points, stored_labels


class LabelsTimeoutError(TimeoutError):
    """The expert did not label the queue in time; labels so far are kept."""


def queue_progress(store: str, queue_csv: Path) -> tuple[int, int]:
    """(labeled, queued) points of a relabel queue, from the store's labels."""
    queue = pd.read_csv(queue_csv, dtype={"sample": str})
    keys = labeled_points(store)
    labeled = sum((s, int(p)) in keys for s, p in zip(queue["sample"], queue["point"],
                                                      strict=True))  # fmt: skip
    return labeled, len(queue)


@task(name="wait-for-labels", cache_policy=NO_CACHE)
def wait_for_labels(
    store: str, queue_csv: str, *, min_labels: int | None, poll_s: float, timeout_s: float
) -> int:
    """Return once ``min_labels`` (default: all) queued points are labeled in the store
    (by `xrdmap labels import` or `xrdmap label-ui`); raise :class:`LabelsTimeoutError` after
    ``timeout_s``. Returns the number of queued points labeled."""
    logger = get_run_logger()
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        labeled, queued = queue_progress(store, Path(queue_csv))
        needed = queued if min_labels is None else min(min_labels, queued)
        if labeled >= needed:
            return labeled
        if labeled != last:
            logger.info("waiting for labels: %d of %d queued points labeled (%s); label with "
                        "`xrdmap label-ui %s` or `xrdmap labels import %s %s`", labeled, queued,
                        queue_csv, store, store, queue_csv)  # fmt: skip
            last = labeled
        if time.monotonic() > deadline:
            raise LabelsTimeoutError(
                f"{queue_csv}: {labeled} of {queued} points labeled after {timeout_s:.0f} s; "
                "the labels are kept: run the rounds again to go on waiting"
            )
        time.sleep(poll_s)


@task(name="train-model", cache_policy=NO_CACHE)
def train_model(store: str, cfg: TrainConfig, phases: PhasesConfig) -> tuple[str, dict]:
    """A new registry version from every label stored with the beamtime."""
    labels = stored_labels(store)
    version, card = train_version(store, labels, cfg, phases)
    get_run_logger().info("trained %s on %d labels", version, len(labels))
    return version, card
