"""Active-learning flows: the relabel queue of a store, and rounds of the whole loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.hooks import record_failure
from flows.predict import predict_store
from flows.process_beamtime import dask_task_runner
from models.predict import latest_predicted
from models.query import unsure_fraction
from models.strategies import DEFAULT_QUERY_STRATEGY
from tasks.query import build_relabel_queue
from tasks.report import store_artifact_key
from tasks.train import train_model, wait_for_labels
from xrdmap.config import CONF_DIR, DaskConfig, PhasesConfig, load_phases, load_train
from xrdmap.relabel_queue import COLD_START_DIR, QUEUE_FILE
from xrdmap.store import beside_store

ROUNDS_FILE = "rounds.csv"


@flow(name="query-relabel", on_failure=[record_failure], on_crashed=[record_failure])
def query_relabel(
    store: str,
    n: int = 20,
    phases: PhasesConfig | None = None,
    strategy: str = DEFAULT_QUERY_STRATEGY,
    score: str = "least_confidence",
    version: str | None = None,
    out_dir: str | None = None,
    seed: int = 0,
) -> tuple[str, str]:
    """Queue the ``n`` points an expert should label next (CSV + pictures + artifact)."""
    phases = phases or load_phases()
    return build_relabel_queue(store, n, phases, strategy=strategy, score=score,
                               version=version, out_dir=out_dir, seed=seed)  # fmt: skip


@dataclass
class RoundRecord:
    round: int
    finished: str
    queried_by: str
    queue: str
    labels: int
    model: str
    test_mean_accuracy: float | None
    unsure_share: float


@flow(name="active-learning", on_failure=[record_failure], on_crashed=[record_failure])
def active_learning(
    store: str,
    registry: str,
    rounds: int = 1,
    n: int = 20,
    strategy: str = DEFAULT_QUERY_STRATEGY,
    conf_dir: str | None = None,
    min_labels: int | None = None,
    poll_s: float = 10.0,
    timeout_s: float = 7 * 24 * 3600.0,
    n_workers: int = 2,
    seed: int = 0,
) -> list[RoundRecord]:
    """Rounds of query -> wait for the expert's labels -> retrain -> re-predict -> maps.

    The queue of a round is ``<store>-queue/<model version>``; if it exists (a run that
    stopped while waiting) it is reused, so re-running the flow resumes. Each round is
    appended to ``<store>-queue/rounds.csv`` and the table is published as an artifact.
    """
    logger = get_run_logger()
    conf = Path(conf_dir) if conf_dir else CONF_DIR
    phases = load_phases(conf / "phases.yaml")
    cfg = load_train(conf / "train.yaml").model_copy(update={"registry_dir": registry})
    queue_root = beside_store(store, "-queue")
    records = []
    for k in range(rounds):
        asked_by = latest_predicted(store)
        queue_dir = queue_root / (asked_by or COLD_START_DIR)
        if (queue_dir / QUEUE_FILE).is_file():
            queue_csv = str(queue_dir / QUEUE_FILE)
            logger.info("round %d: going on with the existing queue %s", k + 1, queue_csv)
        else:
            queue_csv, _ = build_relabel_queue(store, n, phases, strategy=strategy,
                                               score="least_confidence", version=asked_by,
                                               out_dir=str(queue_dir), seed=seed + k)  # fmt: skip
        wait_for_labels(store, queue_csv, min_labels=min_labels, poll_s=poll_s,
                        timeout_s=timeout_s)  # fmt: skip
        version, card = train_model(store, cfg, phases)
        runner = dask_task_runner(DaskConfig(n_workers=n_workers))
        predict_store.with_options(task_runner=runner)(store, registry, version, None)
        metrics = card["test_metrics"]
        mean = (sum(m["accuracy"] for m in metrics.values()) / len(metrics)) if metrics else None
        record = RoundRecord(
            round=k + 1,
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            queried_by=asked_by,
            queue=queue_csv,
            labels=card["labels"]["count"],
            model=version,
            test_mean_accuracy=mean,
            unsure_share=unsure_fraction(store, version),
        )
        records.append(record)
        history = queue_root / ROUNDS_FILE
        row = pd.DataFrame([asdict(record)])
        row.to_csv(history, mode="a", header=not history.exists(), index=False)
        table = pd.read_csv(history).astype(object)
        create_table_artifact(
            table=table.where(table.notna(), None).to_dict(orient="records"),
            key=store_artifact_key("active-learning-rounds", store),
            description=f"Active-learning rounds of {store}: labels, model, metrics",
        )
        logger.info("round %d: %d labels -> %s (unsure share %.3f)", k + 1, record.labels,
                    version, record.unsure_share)  # fmt: skip
    return records
