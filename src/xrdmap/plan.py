"""Plan the processing of a beamtime: discover, check geometry, lay out the store, and
list the chunks still to do. Everything that can fail on bad input fails here, before
the store is written and before any chunk is processed; the beamtime is inspected once
per run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import zarr

from xrdmap.beamtime import Beamtime, SampleScan, detector_geometry
from xrdmap.config import ProcessConfig
from xrdmap.discovery import discover_beamtime
from xrdmap.hashing import sha256_file
from xrdmap.ingest import ChunkInput, chunk_inputs
from xrdmap.integrate import BatchIntegrator, DetectorGeometry
from xrdmap.provenance import software_versions
from xrdmap.sources import STATUS_OK, source_identity, split_spec
from xrdmap.store import (
    ChunkRegion,
    StoreError,
    check_compatible,
    chunk_regions,
    chunk_sources,
    done_chunks,
    open_or_create,
    point_status,
    store_settings,
)


@dataclass(frozen=True)
class Plan:
    """A checked beamtime, its laid-out store, and the chunks done and left."""

    store: str
    beamtime: Beamtime
    geometry: DetectorGeometry
    regions: tuple[ChunkRegion, ...]
    done: frozenset[tuple[str, int]]
    #: done chunks whose quarantined points are read again: (sample, index) -> points
    retry: dict[tuple[str, int], tuple[int, ...]] = field(default_factory=dict)

    @property
    def todo(self) -> list[ChunkInput]:
        left = [r for r in self.regions if (r.sample, r.index) not in self.done]
        again = [r for r in self.regions if (r.sample, r.index) in self.retry]
        return chunk_inputs(self.beamtime, self.geometry, left) + [
            replace(c, retry=self.retry[(c.region.sample, c.region.index)])
            for c in chunk_inputs(self.beamtime, self.geometry, again)
        ]

    @property
    def n_frames(self) -> int:
        return sum(r.n_frames for r in self.regions)


@dataclass(frozen=True)
class Inspection:
    """A beamtime whose metadata, geometry and mask have been read and checked."""

    beamtime: Beamtime
    geometry: DetectorGeometry
    ai: object  #: pyFAI AzimuthalIntegrator
    mask: np.ndarray
    provenance: dict


#: The last inspection of this process: (key, inputs read, their stamps, inspection).
_LAST: list[tuple[tuple[str, str], list[Path], tuple, Inspection]] = []


def _inputs_of(beamtime: Beamtime) -> list[Path]:
    """Every file and folder an inspection read or listed."""
    paths = [beamtime.root, beamtime.description, beamtime.poni_path]
    if beamtime.mask_path:
        paths.append(beamtime.mask_path)
    for s in beamtime.samples:
        folders = {split_spec(f)[0].rpartition("/")[0] for f in s.files}
        paths += list(s.inputs)
        paths += [s.directory / folder for folder in sorted(folders)]
    return paths


def _stamps(paths: list[Path]) -> tuple:
    """(mtime_ns, size) of each path; None where it is gone."""
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def inspect_beamtime(beamtime_dir: str, cfg: ProcessConfig) -> Inspection:
    """Read and check everything a run needs; raises with the file and field named.

    The beamtime is inspected once per run: the last inspection of this process is
    reused while every file and folder it read (metadata, PONI, mask, frame folders)
    keeps its modification time and size; the command line's fast pre-check and the
    flow's plan task then share one inspection.
    """
    key = (str(Path(beamtime_dir).resolve()), cfg.model_dump_json())
    if _LAST and _LAST[0][0] == key and _stamps(_LAST[0][1]) == _LAST[0][2]:
        return _LAST[0][3]
    inspection = _inspect(beamtime_dir, cfg)
    paths = _inputs_of(inspection.beamtime)
    _LAST[:] = [(key, paths, _stamps(paths), inspection)]
    return inspection


def _inspect(beamtime_dir: str, cfg: ProcessConfig) -> Inspection:
    beamtime = discover_beamtime(beamtime_dir)
    geometry = detector_geometry(beamtime)
    ai, mask = geometry.load()
    provenance = {
        "software": software_versions(),
        "geometry": {
            "poni_file": str(beamtime.poni_path),
            "poni_sha256": sha256_file(beamtime.poni_path),
            "poni": beamtime.poni_path.read_text(),
            "mask_file": str(beamtime.mask_path) if beamtime.mask_path else None,
            "mask_sha256": sha256_file(beamtime.mask_path) if beamtime.mask_path else None,
            "masked_pixels": int(np.count_nonzero(mask)),
            "count_cutoff": beamtime.count_cutoff,
        },
        "integration": cfg.integration.model_dump(),
        "compression": cfg.compression.model_dump(),
        "chunk_frames": cfg.chunk_frames,
        "description": beamtime.description.name,
        "description_sha256": sha256_file(beamtime.description),
    }
    return Inspection(beamtime, geometry, ai, mask, provenance)


def preflight(beamtime_dir: str, store: str, cfg: ProcessConfig) -> Inspection:
    """Everything :func:`plan_beamtime` checks, without writing: a fast, clean error
    before any orchestration starts (the plan reuses this inspection)."""
    inspection = inspect_beamtime(beamtime_dir, cfg)
    check_compatible(store, store_settings(inspection.beamtime, cfg, inspection.provenance))
    return inspection


def _check_same_acquisition(
    store: str,
    sample: SampleScan,
    region: ChunkRegion,
    recorded: tuple[str, str],
    ok: np.ndarray,
    *,
    retrying: bool,
) -> None:
    """Refuse to resume when a finished chunk's frame files are not the ones it was
    read from (replaced, rewritten, removed): the store would mix two acquisitions.
    Retrying its quarantined points (``~ok``), only the files of its ok points must be
    the same."""
    refs = sample.frame_refs(region.start, region.stop)
    where = f"{store}: {sample.name} points {region.start}..{region.stop - 1}"
    if retrying:
        if source_identity(refs, ok) != recorded[1]:
            raise StoreError(
                f"{where}: the frame files of its points ingested ok changed (size or time) "
                "since; the store would mix two acquisitions: process into a new store"
            )
        return
    if source_identity(refs) != recorded[0]:
        hint = ""
        if not ok.all() and source_identity(refs, ok) == recorded[1]:
            hint = " (only files of quarantined points changed: --retry-quarantined reads them)"
        raise StoreError(
            f"{where}: their frame files changed (size or time) since they were ingested; "
            f"the store would mix two acquisitions: process into a new store{hint}"
        )


def plan_beamtime(
    beamtime_dir: str, store: str, cfg: ProcessConfig, *, retry_quarantined: bool = False
) -> Plan:
    """Check the beamtime and the settings, create (or reopen) the store, list chunks.

    Parameters
    ----------
    beamtime_dir : str
        The beamtime folder (read only, never modified).
    store : str
        The Zarr store: a folder or an fsspec URL; created when absent.
    cfg : ProcessConfig
        Chunking, integration and compression settings.
    retry_quarantined : bool
        Read the quarantined points of done chunks again (a restored or fixed file).

    Returns
    -------
    Plan
        The checked beamtime, every task region, which are done already and which
        points are retried.

    Raises
    ------
    BeamtimeError, GeometryError
        Bad metadata, PONI or mask (the message names the file and field).
    StoreError
        The store holds another beamtime or was made with other settings.
    """
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
    regions, done, retry = _chunks(store, root, beamtime, cfg, retry_quarantined)
    return Plan(
        store=store,
        beamtime=beamtime,
        geometry=inspection.geometry,
        regions=tuple(regions),
        done=frozenset(done),
        retry=retry,
    )


def _chunks(
    store: str, root: zarr.Group, beamtime: Beamtime, cfg: ProcessConfig, retry_quarantined: bool
) -> tuple[list[ChunkRegion], set[tuple[str, int]], dict[tuple[str, int], tuple[int, ...]]]:
    """Every task region, those done (their frame files checked unchanged), and the
    quarantined points of done chunks to read again; reads the store only."""
    regions: list[ChunkRegion] = []
    done: set[tuple[str, int]] = set()
    retry: dict[tuple[str, int], tuple[int, ...]] = {}
    for sample in beamtime.samples:
        sample_regions = chunk_regions(sample.name, sample.n_points, cfg.chunk_frames)
        regions += sample_regions
        flags = done_chunks(root, sample.name)
        sources, sources_ok = chunk_sources(root, sample.name)
        status = point_status(root, sample.name)
        for r in sample_regions:
            if not flags[r.index]:
                continue
            ok = status[r.start : r.stop] == STATUS_OK
            again = retry_quarantined and not ok.all()
            recorded = (sources[r.index], sources_ok[r.index])
            _check_same_acquisition(store, sample, r, recorded, ok, retrying=again)
            done.add((sample.name, r.index))
            if again:
                retry[(sample.name, r.index)] = tuple(int(p) for p in np.flatnonzero(~ok) + r.start)
    return regions, done, retry


def nothing_to_do(store: str, inspection: Inspection, cfg: ProcessConfig) -> bool:
    """True if ``store`` is laid out for this beamtime and settings and every chunk is
    done from the frame files there now (:func:`plan_beamtime` would list none to do);
    reads only, so a command can say so without starting a flow."""
    settings = store_settings(inspection.beamtime, cfg, inspection.provenance)
    if not check_compatible(store, settings):
        return False
    root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=False)
    regions, done, _ = _chunks(store, root, inspection.beamtime, cfg, False)
    return len(done) == len(regions)
