"""Active-learning flows: the relabel queue of a store, and rounds of the whole loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.hooks import record_failure
from flows.predict import predict_runner, predict_store
from tasks.active_learning import (
    build_relabel_queue,
    open_round,
    record_round,
    train_model,
    wait_for_labels,
)
from xrdmap.active.scores import DEFAULT_SCORE
from xrdmap.active.strategies import DEFAULT_STRATEGY
from xrdmap.config import (
    DaskConfig,
    PhasesConfig,
    conf_file,
    load_phases,
    load_process,
    load_train,
    registry_dir,
)


@flow(name="query-relabel", on_failure=[record_failure], on_crashed=[record_failure])
def query_relabel(
    store: str,
    n: int = 20,
    phases: PhasesConfig | None = None,
    strategy: str = DEFAULT_STRATEGY,
    score: str = DEFAULT_SCORE,
    version: str | None = None,
    out_dir: str | None = None,
    seed: int = 0,
    registry: str | None = None,
) -> tuple[str, str]:
    """Queue the ``n`` points an expert should label next (CSV + pictures with why the
    model called what it called + artifact); ``registry``: train.yaml's by default."""
    phases = phases or load_phases()
    return build_relabel_queue(
        store,
        n,
        phases,
        strategy=strategy,
        score=score,
        version=version,
        out_dir=out_dir,
        seed=seed,
        registry=registry or registry_dir(),
    )


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
    registry: str | None = None,
    rounds: int = 1,
    n: int = 20,
    strategy: str = DEFAULT_STRATEGY,
    conf_dir: str | None = None,
    min_labels: int | None = None,
    poll_s: float = 10.0,
    timeout_s: float = 7 * 24 * 3600.0,
    dask: DaskConfig | None = None,
    seed: int = 0,
) -> list[RoundRecord]:
    """Rounds of query -> wait for the expert's labels -> retrain -> re-predict -> maps.

    The queue of a round is ``<store>-queue/<model version>``; if it exists (a run that
    stopped while waiting) it is reused, so re-running the flow resumes. Each round is
    appended to ``<store>-queue/rounds.csv`` and the table is published as an artifact.
    Prediction runs on the Dask cluster ``dask`` describes (default: ``process.yaml``'s,
    scheduler address and batch system included).
    """
    logger = get_run_logger()
    phases = load_phases(conf_file(conf_dir, "phases.yaml"))
    registry = registry_dir(conf_dir, registry)
    cfg = load_train(conf_file(conf_dir, "train.yaml")).model_copy(
        update={"registry_dir": registry}
    )
    dask = dask or load_process(conf_file(conf_dir, "process.yaml")).dask
    records = []
    for k in range(rounds):
        asked_by, queue_dir, queue_csv = open_round(store)
        if queue_csv:
            logger.info("round %d: going on with the existing queue %s", k + 1, queue_csv)
        else:
            queue_csv, _ = build_relabel_queue(
                store,
                n,
                phases,
                strategy=strategy,
                score=DEFAULT_SCORE,
                version=asked_by,
                out_dir=queue_dir,
                seed=seed + k,
                registry=registry,
            )
        wait_for_labels(store, queue_csv, min_labels=min_labels, poll_s=poll_s, timeout_s=timeout_s)
        version, card = train_model(store, cfg, phases)
        predict_store.with_options(task_runner=predict_runner(store, dask))(
            store, registry, version
        )
        metrics = card["test_metrics"]
        mean = (sum(m["accuracy"] for m in metrics.values()) / len(metrics)) if metrics else None
        record = record_round(
            store,
            {
                "round": k + 1,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "queried_by": asked_by,
                "queue": queue_csv,
                "labels": card["labels"]["count"],
                "model": version,
                "test_mean_accuracy": mean,
            },
        )
        records.append(RoundRecord(**record))
        logger.info(
            "round %d: %d labels -> %s (unsure share %.3f)",
            k + 1,
            record["labels"],
            version,
            record["unsure_share"],
        )
    return records
