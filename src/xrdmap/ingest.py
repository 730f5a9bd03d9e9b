"""One pass over one chunk of frames: read raw -> write frames -> integrate -> write
patterns -> mark the chunk done. Plain Python; the Prefect task wraps it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from xrdmap.config import ProcessConfig
from xrdmap.discovery import Beamtime, FrameRefs
from xrdmap.framesource import STATUS_OK, read_frames
from xrdmap.integrate import cached_batch_integrator
from xrdmap.store import ChunkRegion, single_threaded_codecs


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
    poni_path: Path
    mask_path: Path | None
    count_cutoff: int


def chunk_inputs(beamtime: Beamtime, regions: list[ChunkRegion]) -> list[ChunkInput]:
    return [
        ChunkInput(
            region=r,
            frames=beamtime.sample(r.sample).frame_refs(r.start, r.stop),
            poni_path=beamtime.poni_path,
            mask_path=beamtime.mask_path,
            count_cutoff=beamtime.count_cutoff,
        )
        for r in regions
    ]


def process_chunk(store: str, chunk: ChunkInput, cfg: ProcessConfig) -> ChunkReport:
    """Ingest and integrate one chunk; a chunk already marked done is skipped."""
    t0 = time.perf_counter()
    single_threaded_codecs()
    region = chunk.region
    group = zarr.open_group(store, mode="r+")[region.sample]
    if group["chunk_done"][region.index]:
        return ChunkReport(region.sample, region.index, region.n_frames, skipped=True)
    integrator = cached_batch_integrator(
        chunk.poni_path, chunk.mask_path, cfg.integration, count_cutoff=chunk.count_cutoff
    )
    shape = integrator.shape
    k = region.n_frames
    intensity = np.full((k, cfg.integration.npt), np.nan, np.float32)
    sigma = np.full_like(intensity, np.nan)
    status = np.empty(k, np.uint8)
    reason: list[str] = []
    checksum: list[str] = []
    step = cfg.frames_chunk_frames
    for sub in range(region.start, region.stop, step):
        stop = min(sub + step, region.stop)
        batch = read_frames(chunk.frames, sub, stop, shape)
        group["frames"][sub:stop] = batch.frames
        result = integrator.integrate(batch.frames)
        ok = batch.status == STATUS_OK
        rows = slice(sub - region.start, stop - region.start)
        intensity[rows][ok] = result.intensity[ok]
        sigma[rows][ok] = result.sigma[ok]
        status[rows] = batch.status
        reason += batch.reason
        checksum += batch.checksum
    region_slice = slice(region.start, region.stop)
    group["patterns"][region_slice] = intensity
    group["sigma"][region_slice] = sigma
    group["reason"][region_slice] = np.array(reason, dtype=object)
    group["input_checksum"][region_slice] = np.array(checksum, dtype=object)
    group["status"][region_slice] = status
    group["chunk_done"][region.index] = 1  # last: the chunk is complete
    bad = np.flatnonzero(status != STATUS_OK)
    return ChunkReport(
        region.sample,
        region.index,
        k,
        seconds=time.perf_counter() - t0,
        quarantined=[(region.start + int(i), int(status[i]), reason[i]) for i in bad],
    )
