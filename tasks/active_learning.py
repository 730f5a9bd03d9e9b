"""Prefect tasks of active learning: the relabel queue, waiting for the expert, a new
model version, and the record of each round."""

from __future__ import annotations

import time
from pathlib import Path
from shlex import quote

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.attribution import queue_attributions
from tasks.report import store_artifact_key
from xrdmap.active.query import query_points, store_unsure_fraction
from xrdmap.active.queue import (
    QUEUE_FILE,
    append_round,
    new_queue_dir,
    pending_rows,
    queue_dir,
    read_queue,
    write_queue,
)
from xrdmap.config import PhasesConfig, TrainConfig
from xrdmap.errors import InputError
from xrdmap.label_store import labeled_points, stored_labels
from xrdmap.maps import start_drawing_server
from xrdmap.phases import store_reference_lines
from xrdmap.store import latest_predicted


class LabelsTimeoutError(TimeoutError, InputError):
    """The expert did not label the queue in time; labels so far are kept."""


def _table_rows(table) -> list[dict]:
    shown = table.astype(object)
    return shown.where(shown.notna(), None).to_dict(orient="records")


@task(name="build-relabel-queue", cache_policy=NO_CACHE)
def build_relabel_queue(
    store: str,
    n: int,
    phases: PhasesConfig,
    *,
    strategy: str,
    score: str,
    version: str | None,
    out_dir: str | None,
    seed: int,
    registry: str | None = None,
) -> tuple[str, str]:
    """Select the points, write queue.csv and pictures (with why the model called what
    it called, when its ``registry`` is given and the store is in its domain); returns
    (queue path, version)."""
    start_drawing_server(n)  # the pictures' processes import while the points are chosen
    query = query_points(store, n, strategy=strategy, score=score, version=version, seed=seed)
    folder = Path(out_dir) if out_dir else new_queue_dir(store, query.version)
    lines = store_reference_lines(store, phases)
    attributions = None
    if query.version and registry:
        points = [
            (s, int(p)) for s, p in zip(query.table["sample"], query.table["point"], strict=True)
        ]
        attributions = queue_attributions(store, registry, query.version, points)
        if attributions is None:
            get_run_logger().info(
                "no attributions: %s does not hold the model %s that predicted %s, or the "
                "store is outside its domain",
                registry,
                query.version,
                store,
            )
    path = write_queue(store, query.table, query.version, folder, lines, attributions)
    rows = _table_rows(query.table.round(3))
    create_table_artifact(
        table=rows,
        key=store_artifact_key("relabel-queue", store),
        description=f"Points to relabel ({len(rows)}), model {query.version or 'none'}: {path}",
    )
    get_run_logger().info("%d points queued for relabeling in %s", len(rows), path)
    return str(path), query.version


@task(name="open-round", cache_policy=NO_CACHE)
def open_round(store: str) -> tuple[str, str, str | None]:
    """(model version the round's query uses, its queue folder, that queue's CSV if it
    exists): a round that stopped while waiting goes on with its queue."""
    asked_by = latest_predicted(store)
    folder = queue_dir(store, asked_by)
    existing = folder / QUEUE_FILE
    return asked_by, str(folder), str(existing) if existing.is_file() else None


@task(name="wait-for-labels", cache_policy=NO_CACHE)
def wait_for_labels(
    store: str, queue_csv: str, *, min_labels: int | None, poll_s: float, timeout_s: float
) -> int:
    """Return once ``min_labels`` (default: all) queued points are labeled in the store
    (by `xrdmap labels import` or `xrdmap label-ui`); raise :class:`LabelsTimeoutError` after
    ``timeout_s``. Returns the number of queued points labeled."""
    logger = get_run_logger()
    deadline = time.monotonic() + timeout_s
    queue = read_queue(Path(queue_csv).parent)
    last = -1
    while True:
        queued = len(queue)
        labeled = queued - len(pending_rows(queue, labeled_points(store)))
        needed = queued if min_labels is None else min(min_labels, queued)
        if labeled >= needed:
            return labeled
        if labeled != last:
            logger.info(
                "waiting for labels: %d of %d queued points labeled (%s); label with "
                "`xrdmap label-ui %s` or `xrdmap labels import %s %s`",
                labeled,
                queued,
                queue_csv,
                quote(store),
                quote(store),
                quote(queue_csv),
            )
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
    from models.train import train_version  # scikit-learn's metrics: not for a query

    labels = stored_labels(store)
    version, card = train_version(store, labels, cfg, phases)
    get_run_logger().info("trained %s on %d labels", version, len(labels))
    return version, card


@task(name="record-round", cache_policy=NO_CACHE)
def record_round(store: str, record: dict) -> dict:
    """Add the share of unsure points under the round's model, append the round to
    ``<store>-queue/rounds.csv`` and publish the whole table as an artifact."""
    record = {**record, "unsure_share": store_unsure_fraction(store, record["model"])}
    table = append_round(store, record)
    create_table_artifact(
        table=_table_rows(table),
        key=store_artifact_key("active-learning-rounds", store),
        description=f"Active-learning rounds of {store}: labels, model, metrics",
    )
    return record
