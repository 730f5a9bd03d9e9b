"""The whole pipeline on one beamtime, and backfills over past beamtimes.

``beamtime-pipeline`` runs the stages asked for, in order: ``ingest`` (frames -> Zarr
-> patterns, resumable), ``predict`` (confidences + maps with the given or latest
model version, skipped when the registry is empty), ``queue`` (the relabel queue).
``backfill`` runs it over beamtimes chosen by name or start date. Both are safe to run
twice: ingestion skips finished chunks, a prediction with one model version rewrites
the same values, and a queue folder is never overwritten.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.active_learning import query_relabel
from flows.hooks import record_failure
from flows.predict import predict_store
from flows.process_beamtime import dask_task_runner, process_beamtime
from models.registry import versions
from tasks.report import store_artifact_key
from xrdmap.catalog import completed_beamtimes, mark_pipeline_done, select_beamtimes, store_for
from xrdmap.config import CONF_DIR, load_phases, load_process

STAGES = ("ingest", "predict", "queue")


@flow(name="beamtime-pipeline", on_failure=[record_failure], on_crashed=[record_failure])
def beamtime_pipeline(
    beamtime_dir: str,
    store: str,
    registry: str = "data/registry",
    stages: list[str] = list(STAGES),  # noqa: B006 (Prefect parameters are copied)
    model_version: str | None = None,
    queue_n: int = 20,
    conf_dir: str | None = None,
) -> dict:
    """Ingest -> integrate -> predict -> maps -> relabel queue for one beamtime."""
    logger = get_run_logger()
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"stages: unknown {', '.join(unknown)}; choose from {STAGES}")
    conf = Path(conf_dir) if conf_dir else CONF_DIR
    cfg = load_process(conf / "process.yaml")
    runner = dask_task_runner(cfg.dask)
    if "ingest" in stages:
        process_beamtime.with_options(task_runner=runner)(beamtime_dir, store, cfg)
    known = versions(registry) if Path(registry).is_dir() else []
    version = model_version or (known[-1] if known else None)
    if "predict" in stages:
        if version:
            predict_store.with_options(task_runner=runner)(store, registry, version, None)
        else:
            logger.warning("no model in %s yet: prediction and maps skipped", registry)
    queue_csv = None
    if "queue" in stages:
        queue_csv, _ = query_relabel(store, queue_n, load_phases(conf / "phases.yaml"))
    record = mark_pipeline_done(store, list(stages), version if "predict" in stages else None)
    create_markdown_artifact(
        markdown=(
            f"### Pipeline of {beamtime_dir}\n\n| | |\n|---|---|\n| store | {store} |\n"
            f"| stages | {', '.join(stages)} |\n| model | {record['model_version'] or '-'} |\n"
            f"| relabel queue | {queue_csv or '-'} |\n| finished | {record['finished']} |\n"
        ),
        key=store_artifact_key("pipeline", store),
        description=f"Pipeline of {beamtime_dir}",
    )
    logger.info("%s done: %s", beamtime_dir, record)
    return record


@flow(name="backfill", on_failure=[record_failure], on_crashed=[record_failure])
def backfill(
    beamtimes_root: str,
    stores_root: str,
    beamtimes: list[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    stages: list[str] = ["predict"],  # noqa: B006 (Prefect parameters are copied)
    model_version: str | None = None,
    registry: str = "data/registry",
    conf_dir: str | None = None,
) -> list[str]:
    """Redo ``stages`` on the completed beamtimes named (or started within the dates),
    e.g. only ``predict`` with a new model version, reusing the integrated patterns."""
    chosen = select_beamtimes(completed_beamtimes(beamtimes_root), names=beamtimes,
                              since=since, until=until)  # fmt: skip
    done = []
    for entry in chosen:
        store = store_for(stores_root, entry.name)
        beamtime_pipeline.with_options(flow_run_name=f"backfill-{entry.name}")(
            entry.path, store, registry, stages, model_version, conf_dir=conf_dir
        )
        done.append(entry.name)
    get_run_logger().info("backfill of %s: %s", stages, done or "nothing selected")
    return done
