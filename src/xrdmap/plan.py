"""Plan the processing of a beamtime: discover, check geometry, lay out the store, and
list the chunks still to do. Everything that can fail on bad input fails here, before
any chunk is processed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrdmap.config import ProcessConfig
from xrdmap.discovery import Beamtime, discover_beamtime
from xrdmap.ingest import ChunkInput, chunk_inputs
from xrdmap.integrate import BatchIntegrator, file_sha256, load_geometry, load_mask
from xrdmap.provenance import software_versions
from xrdmap.store import (
    ChunkRegion,
    check_compatible,
    chunk_regions,
    done_chunks,
    open_or_create,
    settings_digest,
)


@dataclass(frozen=True)
class Plan:
    store: str
    beamtime: Beamtime
    regions: tuple[ChunkRegion, ...]
    done: frozenset[tuple[str, int]]

    @property
    def todo(self) -> list[ChunkInput]:
        left = [r for r in self.regions if (r.sample, r.index) not in self.done]
        return chunk_inputs(self.beamtime, left)

    @property
    def n_frames(self) -> int:
        return sum(r.n_frames for r in self.regions)


@dataclass(frozen=True)
class Inspection:
    """A beamtime whose metadata, geometry and mask have been read and checked."""

    beamtime: Beamtime
    ai: object  #: pyFAI AzimuthalIntegrator
    mask: np.ndarray
    provenance: dict


def inspect_beamtime(beamtime_dir: str, cfg: ProcessConfig) -> Inspection:
    """Read and check everything a run needs; raises with the file and field named."""
    beamtime = discover_beamtime(beamtime_dir)
    ai = load_geometry(beamtime.poni_path)
    mask = load_mask(beamtime.mask_path, tuple(ai.detector.shape))
    provenance = {
        "software": software_versions(),
        "geometry": {
            "poni_file": str(beamtime.poni_path),
            "poni_sha256": file_sha256(beamtime.poni_path),
            "poni": beamtime.poni_path.read_text(),
            "mask_file": str(beamtime.mask_path) if beamtime.mask_path else None,
            "mask_sha256": file_sha256(beamtime.mask_path) if beamtime.mask_path else None,
            "masked_pixels": int(np.count_nonzero(mask)),
            "count_cutoff": beamtime.count_cutoff,
        },
        "integration": cfg.integration.model_dump(),
        "compression": cfg.compression.model_dump(),
        "chunk_frames": cfg.chunk_frames,
        "beamtime_json_sha256": file_sha256(beamtime.root / "beamtime.json"),
    }
    return Inspection(beamtime, ai, mask, provenance)


def preflight(beamtime_dir: str, store: str, cfg: ProcessConfig) -> Inspection:
    """Everything :func:`plan_beamtime` checks, without writing: for a fast, clean error."""
    inspection = inspect_beamtime(beamtime_dir, cfg)
    check_compatible(
        store, settings_digest(inspection.beamtime, cfg, inspection.provenance["geometry"])
    )
    return inspection


def plan_beamtime(beamtime_dir: str, store: str, cfg: ProcessConfig) -> Plan:
    """Check the beamtime and the settings, create (or reopen) the store, list chunks."""
    inspection = inspect_beamtime(beamtime_dir, cfg)
    beamtime = inspection.beamtime
    integrator = BatchIntegrator(
        inspection.ai, inspection.mask, cfg.integration, count_cutoff=beamtime.count_cutoff
    )
    root = open_or_create(
        store,
        beamtime,
        cfg,
        tth_deg=integrator.radial,
        detector_shape=integrator.shape,
        provenance=inspection.provenance,
    )
    regions: list[ChunkRegion] = []
    done: set[tuple[str, int]] = set()
    for sample in beamtime.samples:
        sample_regions = chunk_regions(sample.name, sample.n_points, cfg.chunk_frames)
        regions += sample_regions
        flags = done_chunks(root, sample.name)
        done |= {(sample.name, r.index) for r in sample_regions if flags[r.index]}
    return Plan(store=store, beamtime=beamtime, regions=tuple(regions), done=frozenset(done))
