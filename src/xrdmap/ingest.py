"""One pass over one chunk of frames: read raw -> write frames -> integrate -> write
patterns -> mark the chunk done. Plain Python; the Prefect task wraps it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from xrdmap.beamtime import Beamtime
from xrdmap.config import ProcessConfig
from xrdmap.integrate import DetectorGeometry, cached_batch_integrator
from xrdmap.sources import (
    STATUS_MEANING,
    STATUS_NONFINITE,
    STATUS_OK,
    FrameRefs,
    read_ahead,
    read_frames,
    source_identity,
)
from xrdmap.store import (
    ChunkRegion,
    mark_chunk_done,
    open_chunk,
    single_threaded_codecs,
    write_frames,
    write_point_results,
    writing,
)


@dataclass
class ChunkReport:
    """What one chunk did; small, so it travels back through Dask and Prefect."""

    sample: str
    index: int
    n_frames: int
    skipped: bool = False
    seconds: float = 0.0
    quarantined: list[tuple[int, int, str]] = field(default_factory=list)  # point, code, why
    retried: int = 0  #: quarantined points read again (--retry-quarantined)
    #: "cpu", the GPU ("cuda:0 NVIDIA H100 80GB HBM3"), or "cpu (... failed: why)"
    integrated_on: str = ""


@dataclass(frozen=True)
class ChunkInput:
    """Everything a task needs for one chunk, and nothing more (it is shipped to Dask)."""

    region: ChunkRegion
    frames: FrameRefs
    geometry: DetectorGeometry
    retry: tuple[int, ...] = ()  #: of a done chunk, only these quarantined points again

    @property
    def n_frames(self) -> int:
        """Frames this task reads."""
        return len(self.retry) if self.retry else self.region.n_frames


def chunk_inputs(
    beamtime: Beamtime, geometry: DetectorGeometry, regions: list[ChunkRegion]
) -> list[ChunkInput]:
    """What each task needs to ingest ``regions`` of ``beamtime``."""
    return [
        ChunkInput(
            region=r,
            frames=beamtime.sample(r.sample).frame_refs(r.start, r.stop),
            geometry=geometry,
        )
        for r in regions
    ]


def process_chunk(store: str, chunk: ChunkInput, cfg: ProcessConfig) -> ChunkReport:
    """Ingest and integrate one chunk; a chunk already marked done is skipped.

    Parameters
    ----------
    store : str
        A store laid out by :func:`xrdmap.plan.plan_beamtime`.
    chunk : ChunkInput
        The region and where its frames are.
    cfg : ProcessConfig
        The settings the store was laid out with.

    Returns
    -------
    ChunkReport
        Frames done, seconds, and the quarantined points with status and reason.
    """
    t0 = time.perf_counter()
    single_threaded_codecs()
    region = chunk.region
    group = open_chunk(store, region, retry=bool(chunk.retry))
    if group is None:
        return ChunkReport(region.sample, region.index, region.n_frames, skipped=True)
    integrator = cached_batch_integrator(chunk.geometry, cfg.integration)
    source = source_identity(chunk.frames)  # before reading: what the chunk comes from
    points = np.asarray(chunk.retry) if chunk.retry else np.arange(region.start, region.stop)
    k = len(points)
    intensity = np.full((k, cfg.integration.npt), np.nan, np.float32)
    sigma = np.full_like(intensity, np.nan)
    status = np.empty(k, np.uint8)
    reason: list[str] = []
    checksum: list[str] = []
    with writing(store):  # a full disk names the store
        done = 0
        for first, stop in read_ahead(chunk.frames, _runs(points, cfg.frames_chunk_frames)):
            batch = read_frames(chunk.frames, first, stop, integrator.shape)
            write_frames(group, first, batch.frames)
            result = integrator.integrate(batch.frames)
            finite = np.isfinite(result.intensity).all(axis=1) & np.isfinite(result.sigma).all(
                axis=1
            )
            for i in np.flatnonzero((batch.status == STATUS_OK) & ~finite):
                batch.status[i] = STATUS_NONFINITE
                batch.reason[i] = f"point {first + i}: {STATUS_MEANING[STATUS_NONFINITE]}"
            ok = batch.status == STATUS_OK
            rows = slice(done, done + stop - first)
            intensity[rows][ok] = result.intensity[ok]
            sigma[rows][ok] = result.sigma[ok]
            status[rows] = batch.status
            reason += batch.reason
            checksum += batch.checksum
            done += stop - first
        write_point_results(
            group,
            points if chunk.retry else slice(region.start, region.stop),
            intensity=intensity,
            sigma=sigma,
            status=status,
            reason=reason,
            checksum=checksum,
        )
        ok_now = group["status"][region.start : region.stop] == STATUS_OK
        mark_chunk_done(
            group, region, source=source, source_ok=source_identity(chunk.frames, ok_now)
        )
    bad = np.flatnonzero(status != STATUS_OK)
    return ChunkReport(
        region.sample,
        region.index,
        k,
        seconds=time.perf_counter() - t0,
        quarantined=[(int(points[i]), int(status[i]), reason[i]) for i in bad],
        retried=len(chunk.retry),
        integrated_on=integrator.device,
    )


def _runs(points: np.ndarray, longest: int) -> list[tuple[int, int]]:
    """Consecutive ``points`` as (first, stop) runs of at most ``longest`` points."""
    runs: list[tuple[int, int]] = []
    for p in points.tolist():
        if runs and runs[-1][1] == p and runs[-1][1] - runs[-1][0] < longest:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs
