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
    read_frames,
    source_identity,
)
from xrdmap.store import (
    ChunkRegion,
    open_chunk,
    single_threaded_codecs,
    write_chunk_results,
    write_frames,
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


@dataclass(frozen=True)
class ChunkInput:
    """Everything a task needs for one chunk, and nothing more (it is shipped to Dask)."""

    region: ChunkRegion
    frames: FrameRefs
    geometry: DetectorGeometry


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
    group = open_chunk(store, region)
    if group is None:
        return ChunkReport(region.sample, region.index, region.n_frames, skipped=True)
    integrator = cached_batch_integrator(chunk.geometry, cfg.integration)
    shape = integrator.shape
    source = source_identity(chunk.frames)  # before reading: what the chunk comes from
    k = region.n_frames
    intensity = np.full((k, cfg.integration.npt), np.nan, np.float32)
    sigma = np.full_like(intensity, np.nan)
    status = np.empty(k, np.uint8)
    reason: list[str] = []
    checksum: list[str] = []
    with writing(store):  # a full disk names the store
        step = cfg.frames_chunk_frames
        for sub in range(region.start, region.stop, step):
            stop = min(sub + step, region.stop)
            batch = read_frames(chunk.frames, sub, stop, shape)
            write_frames(group, sub, batch.frames)
            result = integrator.integrate(batch.frames)
            finite = np.isfinite(result.intensity).all(axis=1) & np.isfinite(result.sigma).all(
                axis=1
            )
            for i in np.flatnonzero((batch.status == STATUS_OK) & ~finite):
                batch.status[i] = STATUS_NONFINITE
                batch.reason[i] = f"point {sub + i}: {STATUS_MEANING[STATUS_NONFINITE]}"
            ok = batch.status == STATUS_OK
            rows = slice(sub - region.start, stop - region.start)
            intensity[rows][ok] = result.intensity[ok]
            sigma[rows][ok] = result.sigma[ok]
            status[rows] = batch.status
            reason += batch.reason
            checksum += batch.checksum
        write_chunk_results(
            group,
            region,
            intensity=intensity,
            sigma=sigma,
            status=status,
            reason=reason,
            checksum=checksum,
            source=source,
        )
    bad = np.flatnonzero(status != STATUS_OK)
    return ChunkReport(
        region.sample,
        region.index,
        k,
        seconds=time.perf_counter() - t0,
        quarantined=[(region.start + int(i), int(status[i]), reason[i]) for i in bad],
    )
