"""``watch-beamtimes``: start the pipeline once for every newly completed beamtime."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.hooks import record_failure
from tasks.catalog import new_beamtimes
from xrdmap.catalog import store_for

#: The deployment the watcher starts (deployments/prefect.yaml).
PIPELINE_DEPLOYMENT = "beamtime-pipeline/process-beamtime"


@flow(name="watch-beamtimes", on_failure=[record_failure], on_crashed=[record_failure])
def watch_beamtimes(
    beamtimes_root: str,
    stores_root: str,
    registry: str | None = None,
    deployment: str = PIPELINE_DEPLOYMENT,
    stages: list[str] | None = None,
) -> list[str]:
    """For each folder under ``beamtimes_root`` with ``BEAMTIME_COMPLETE`` whose store has
    no pipeline record, create one run of ``deployment`` (not waiting for it); the
    pipeline uses ``registry`` (default: ``train.yaml``'s) and runs ``stages`` (default:
    all of them).

    The run's idempotency key is the folder and its marker's time: however often the
    watcher fires while that run is queued or running, Prefect returns the same run,
    so a beamtime is never processed twice at the same time; a finished one is skipped.
    A marker written again (a re-collected beamtime) gives a new key.
    """
    logger = get_run_logger()
    started = []
    for entry in new_beamtimes(beamtimes_root, stores_root):
        store = store_for(stores_root, entry.name)
        parameters = {"beamtime_dir": entry.path, "store": store, "registry": registry}
        if stages is not None:
            parameters["stages"] = stages
        run = run_deployment(
            deployment,
            parameters=parameters,
            idempotency_key=f"{entry.path}@{entry.completed_at:.3f}",
            flow_run_name=f"pipeline-{entry.name}",
            timeout=0,
            as_subflow=False,
        )
        logger.info("%s: pipeline run %s (%s)", entry.name, run.name, run.id)
        started.append(entry.name)
    return started
