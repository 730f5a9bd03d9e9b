"""The ``process-beamtime`` flow: raw frames -> Zarr store of frames and patterns."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dask
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from tqdm import tqdm

from flows.hooks import record_failure
from flows.runtime import GPU_RESOURCE, require_gpu_workers, sized_task_runner
from tasks.ingest import ingest_integrate_chunk, plan_beamtime_task
from tasks.report import ProgressBoard, publish_summary
from xrdmap.config import ProcessConfig, load_process
from xrdmap.ingest import ChunkReport
from xrdmap.plan import inspect_beamtime
from xrdmap.store import exclusive_writer, quarantine_counts

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner


@dataclass
class ProcessSummary:
    store: str
    frames: int
    chunks: int
    chunks_processed: int
    chunks_skipped: int
    frames_processed: int
    seconds: float
    quarantined: list[tuple[str, int, int, str]]  # sample, point, status, reason
    retried: int  #: quarantined frames read again (--retry-quarantined)
    retried_ok: int  #: ... of which are ok now
    #: per sample: quarantined points now in the store, and all points
    in_store: dict[str, tuple[int, int]]
    #: where this run's chunks were integrated ("cpu", "cuda:0 NVIDIA H200", ...)
    integrated_on: list[str]

    @property
    def frames_per_second(self) -> float:
        return self.frames_processed / self.seconds if self.seconds else 0.0


@flow(
    name="process-beamtime",
    log_prints=True,
    on_failure=[record_failure],
    on_crashed=[record_failure],
)
def process_beamtime(
    beamtime_dir: str,
    store: str,
    config: ProcessConfig | None = None,
    progress_bar: bool = False,
    retry_quarantined: bool = False,
) -> ProcessSummary:
    """Ingest and integrate every frame of a beamtime into one Zarr store (resumable);
    ``retry_quarantined`` reads the quarantined frames of done chunks again."""
    t0 = time.perf_counter()
    cfg = config or load_process()
    logger = get_run_logger()
    with exclusive_writer(store):  # one writer at a time
        plan = plan_beamtime_task(beamtime_dir, store, cfg, retry_quarantined)
        todo = plan.todo
        reports: list[ChunkReport] = []
        if todo:
            board = ProgressBoard(plan)
            # integration.device cuda: only workers declaring a GPU take chunks
            on_gpu = cfg.integration.device == "cuda"
            with dask.annotate(resources=GPU_RESOURCE) if on_gpu else nullcontext():
                futures = [ingest_integrate_chunk.submit(store, chunk, cfg) for chunk in todo]
            bar = tqdm(
                total=sum(c.n_frames for c in todo),
                unit="frame",
                desc="process",
                disable=not progress_bar,
            )
            for future in as_completed(futures):
                report = future.result()
                reports.append(report)
                board.update(report)
                bar.update(report.n_frames)
            bar.close()
        else:
            logger.info("%s is complete: nothing to do", store)
    seconds = time.perf_counter() - t0
    publish_summary(plan, reports, seconds)
    worked = [r for r in reports if not r.skipped]
    return ProcessSummary(
        store=store,
        frames=plan.n_frames,
        chunks=len(plan.regions),
        chunks_processed=len(worked),
        chunks_skipped=len(plan.regions) - len(worked),
        frames_processed=sum(r.n_frames for r in worked),
        seconds=seconds,
        quarantined=[(r.sample, *q) for r in worked for q in r.quarantined],
        retried=sum(r.retried for r in worked),
        retried_ok=sum(r.retried - len(r.quarantined) for r in worked if r.retried),
        in_store=quarantine_counts(store),
        integrated_on=sorted({r.integrated_on for r in worked}),
    )


def run_process_beamtime(
    beamtime_dir: str,
    store: str,
    cfg: ProcessConfig,
    *,
    progress_bar: bool = False,
    retry_quarantined: bool = False,
) -> ProcessSummary:
    """Run the flow on :func:`ingest_task_runner` (the Dask cluster that ``cfg.dask``
    describes, or one thread here for a small beamtime)."""
    runner = ingest_task_runner(cfg, beamtime_dir)
    return process_beamtime.with_options(task_runner=runner)(
        beamtime_dir, store, cfg, progress_bar=progress_bar, retry_quarantined=retry_quarantined
    )


def ingest_task_runner(cfg: ProcessConfig, beamtime_dir: str) -> TaskRunner:
    """The Dask runner of ``cfg.dask`` for ingest, or, for frames smaller than
    ``dask.in_process_below_mb`` as int32 counts (tiny: 278 MB; demo: 2,057 MB) and
    no scheduler named, one thread in this process: a local cluster's start (about
    5 s) outweighs a small beamtime's integration on two cores (tiny, 731 frames:
    7.1 s on the cluster, 2.1 s in process; demo, 5,414 frames: 11 s and 8.4 s).
    One thread, not several: one pipeline run with ingest on two threads aborted in
    glibc ("double free"), and the native call at fault was never found. With
    ``integration.device: cuda``, the workers declare a GPU, checked before anything
    starts."""
    on_gpu = cfg.integration.device == "cuda"
    if on_gpu:
        require_gpu_workers(cfg.dask)
    inspection = inspect_beamtime(beamtime_dir, cfg)
    frames_mb = inspection.beamtime.frames_mb(inspection.ai.detector.shape)
    return sized_task_runner(cfg.dask, frames_mb, threads=1, gpu_workers=on_gpu)
