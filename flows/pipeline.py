"""The whole pipeline on one beamtime, and backfills over past beamtimes.

``beamtime-pipeline`` runs the stages asked for, in order: ``ingest`` (frames -> Zarr
-> patterns, resumable), ``fit`` (phase fractions and unexplained lines of every point,
with their maps; no model needed), ``predict`` (confidences + maps with the given or
latest model version, skipped when the registry is empty), ``report`` (thickness,
layers, composition and alpha/gamma* of every sample, from the fit; a
``sample_sheet.csv`` in or beside the beamtime folder joins its columns), ``queue``
(the relabel queue).
``backfill`` runs it over beamtimes chosen by name or start date. Both are safe to run
twice: ingestion skips finished chunks, a prediction with one model version rewrites
the same values, and a queue folder is never overwritten.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger

from flows.beamtime_report import beamtime_report
from flows.hooks import record_failure
from flows.phase_fit import fit_phases
from flows.process_beamtime import ingest_task_runner, process_beamtime
from tasks.catalog import choose_beamtimes, latest_model_version, record_pipeline
from xrdmap.catalog import store_for
from xrdmap.config import conf_file, load_phases, load_process, registry_dir

#: The sample sheet a beamtime may carry in or beside its folder (``xrdmap simulate``
#: writes one beside it).
SAMPLE_SHEET = "sample_sheet.csv"
STAGES = ("ingest", "fit", "predict", "report", "queue")


@flow(name="beamtime-pipeline", on_failure=[record_failure], on_crashed=[record_failure])
def beamtime_pipeline(
    beamtime_dir: str,
    store: str,
    registry: str | None = None,
    stages: list[str] = list(STAGES),  # noqa: B006 (Prefect parameters are copied)
    model_version: str | None = None,
    queue_n: int = 20,
    conf_dir: str | None = None,
) -> dict:
    """Ingest -> integrate -> phase fit -> predict -> maps -> relabel queue for one beamtime
    (``registry`` default: ``train.yaml``'s)."""
    logger = get_run_logger()
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"stages: unknown {', '.join(unknown)}; choose from {STAGES}")
    cfg = load_process(conf_file(conf_dir, "process.yaml"))
    registry = registry_dir(conf_dir, registry)
    if "ingest" in stages or "fit" in stages:
        # a small beamtime is ingested and fitted on one thread of this process (a
        # point's fit costs about what a frame's ingest does: tiny store 10.3 -> 6.2 s)
        runner = ingest_task_runner(cfg, beamtime_dir)
    if "ingest" in stages:
        process_beamtime.with_options(task_runner=runner)(beamtime_dir, store, cfg)
    if "fit" in stages:
        fit_phases.with_options(task_runner=runner)(store, conf_dir)
    version = model_version or latest_model_version(registry)
    # the model's stages are imported when asked for: a run that only ingests (the
    # watcher's, most backfills) does not load the model code (0.3 s sooner, measured)
    if "predict" in stages:
        from flows.predict import predict_runner, predict_store

        if version:
            predict_store.with_options(task_runner=predict_runner(store, cfg.dask))(
                store, registry, version
            )
        else:
            logger.warning("no model in %s yet: prediction and maps skipped", registry)
    if "report" in stages:
        sheets = [Path(beamtime_dir) / SAMPLE_SHEET, Path(beamtime_dir).parent / SAMPLE_SHEET]
        sheet = next((str(p) for p in sheets if p.is_file()), None)
        beamtime_report(store, sheet)
    queue_csv = None
    if "queue" in stages:
        from flows.active_learning import query_relabel

        queue_csv, _ = query_relabel(
            store, queue_n, load_phases(conf_file(conf_dir, "phases.yaml")), registry=registry
        )
    record = record_pipeline(
        store, beamtime_dir, list(stages), version if "predict" in stages else None, queue_csv
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
    registry: str | None = None,
    conf_dir: str | None = None,
) -> list[str]:
    """Redo ``stages`` on the completed beamtimes named (or started within the dates),
    e.g. only ``predict`` with a new model version, reusing the integrated patterns."""
    chosen = choose_beamtimes(beamtimes_root, beamtimes, since, until)
    done = []
    for entry in chosen:
        store = store_for(stores_root, entry.name)
        beamtime_pipeline.with_options(flow_run_name=f"backfill-{entry.name}")(
            entry.path, store, registry, stages, model_version, conf_dir=conf_dir
        )
        done.append(entry.name)
    get_run_logger().info("backfill of %s: %s", stages, done or "nothing selected")
    return done
