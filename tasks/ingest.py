"""Prefect tasks over the ingest/integration core: planning and one chunk of frames."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from xrdmap.config import ProcessConfig
from xrdmap.ingest import ChunkInput, ChunkReport, process_chunk
from xrdmap.plan import Plan, plan_beamtime


@task(name="plan-beamtime", cache_policy=NO_CACHE)
def plan_beamtime_task(
    beamtime_dir: str, store: str, cfg: ProcessConfig, retry_quarantined: bool = False
) -> Plan:
    """Discover and check the beamtime, lay out the store, list the chunks left to do
    (and, retrying, the quarantined frames of done chunks)."""
    plan = plan_beamtime(beamtime_dir, store, cfg, retry_quarantined=retry_quarantined)
    get_run_logger().info(
        "%d samples, %d frames in %d chunks; %d chunks already done; %d quarantined "
        "frames to read again",
        len(plan.beamtime.samples),
        plan.n_frames,
        len(plan.regions),
        len(plan.done),
        sum(len(points) for points in plan.retry.values()),
    )
    return plan


@task(
    name="ingest-integrate-chunk",
    task_run_name="{chunk.region.sample}-chunk-{chunk.region.index}",
    retries=2,
    retry_delay_seconds=5,
    cache_policy=NO_CACHE,  # idempotency lives in the store's chunk_done flags
)
def ingest_integrate_chunk(store: str, chunk: ChunkInput, cfg: ProcessConfig) -> ChunkReport:
    """Read one chunk of raw frames, write them and their patterns to the store."""
    report = process_chunk(store, chunk, cfg)
    logger = get_run_logger()
    if report.skipped:
        logger.info("already done")
    else:
        logger.info(
            "%d frames in %.2f s (%.0f frames/s), %d quarantined",
            report.n_frames,
            report.seconds,
            report.n_frames / max(report.seconds, 1e-9),
            len(report.quarantined),
        )
        for point, code, reason in report.quarantined:
            logger.warning("point %d quarantined (status %d): %s", point, code, reason)
    return report
