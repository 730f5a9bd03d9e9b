"""The Zarr v3 store of a beamtime: layout, creation, and chunk-wise writes.

One group per sample::

    <sample>/frames        (n, ny, nx) int32   raw frames, chunks of frames_chunk_frames
    <sample>/patterns      (n, npt) float32    azimuthally integrated intensity
    <sample>/sigma         (n, npt) float32    its standard error (Poisson model)
    <sample>/tth_deg       (npt,) float64      2theta bin centres
    <sample>/positions     (n, 2) float64      x_um, y_um motor positions
    <sample>/status        (n,) uint8          0 = ok; codes in the attributes
    <sample>/reason        (n,) str            why a point was quarantined ("" if ok)
    <sample>/input_checksum (n,) str           the frame's checksum as read
    <sample>/chunk_done    (n_chunks,) uint8   1 once a chunk's outputs are all written

Every per-point array except ``frames`` is chunked by the task chunk, so a task writes
whole chunks of its own region only; ``frames`` chunks divide the task chunk. A chunk
counts as done when ``chunk_done`` is set, after all its data: a re-run skips it.
Dimension names are stored (Zarr v3 ``dimension_names``), so xarray reads each group.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numcodecs
import numcodecs.blosc
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from xrdmap.config import CompressionConfig, ProcessConfig
from xrdmap.discovery import Beamtime, SampleScan
from xrdmap.framesource import STATUS_MEANING, STATUS_PENDING

LAYOUT_VERSION = 1


class StoreError(ValueError):
    """The store exists but does not match this beamtime and these settings."""


@dataclass(frozen=True)
class ChunkRegion:
    """Points ``start..stop-1`` of one sample: the unit of work of one task."""

    sample: str
    index: int
    start: int
    stop: int

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


def single_threaded_codecs() -> None:
    """Blosc and Zarr use one thread: Dask workers provide the parallelism."""
    numcodecs.blosc.use_threads = False
    numcodecs.blosc.set_nthreads(1)
    zarr.config.set({"threading.max_workers": 1})


def blosc_codec(cfg: CompressionConfig) -> BloscCodec:
    return BloscCodec(cname=cfg.cname, clevel=cfg.clevel, shuffle=cfg.shuffle)


def chunk_regions(sample: str, n_points: int, chunk_frames: int) -> list[ChunkRegion]:
    return [
        ChunkRegion(sample, i, start, min(start + chunk_frames, n_points))
        for i, start in enumerate(range(0, n_points, chunk_frames))
    ]


def settings_digest(beamtime: Beamtime, cfg: ProcessConfig, geometry_sha256: dict) -> str:
    """What makes a store's contents: beamtime samples, geometry, processing settings."""
    payload = {
        "layout": LAYOUT_VERSION,
        "samples": [(s.name, s.n_points, s.metadata_sha256) for s in beamtime.samples],
        "geometry": geometry_sha256,
        "count_cutoff": beamtime.count_cutoff,
        "process": cfg.model_dump(exclude={"dask"}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_compatible(store: str, digest: str) -> bool:
    """True if ``store`` is laid out for ``digest``; False if it has no layout yet."""
    local = Path(store)
    foreign = local.exists() and (
        not local.is_dir() or (any(local.iterdir()) and not (local / "zarr.json").exists())
    )
    if "://" not in store and foreign:
        raise StoreError(f"{store}: exists and is not a Zarr store; refusing to write there")
    try:
        existing = zarr.open_group(store, mode="r", zarr_format=3).attrs.get("xrdmap")
    except FileNotFoundError:
        return False
    if existing is None:
        return False
    if existing.get("settings_sha256") != digest:
        raise StoreError(
            f"{store}: holds another beamtime or other processing settings "
            f"(built {existing.get('created')} from {existing.get('beamtime')}); "
            "write to a new store"
        )
    return True


def open_or_create(
    store: str,
    beamtime: Beamtime,
    cfg: ProcessConfig,
    *,
    tth_deg: np.ndarray,
    detector_shape: tuple[int, int],
    provenance: dict,
) -> zarr.Group:
    """Open the store of this beamtime, or lay it out; refuse one made otherwise."""
    digest = settings_digest(beamtime, cfg, provenance["geometry"])
    if check_compatible(store, digest):
        return zarr.open_group(store, mode="r+", zarr_format=3)
    root = zarr.open_group(store, mode="a", zarr_format=3)
    codec = blosc_codec(cfg.compression)
    for sample in beamtime.samples:
        _create_sample(root, sample, cfg, codec, tth_deg, detector_shape)
    root.attrs["xrdmap"] = {  # written last: the layout is complete
        **provenance,
        "layout_version": LAYOUT_VERSION,
        "settings_sha256": digest,
        "beamtime": str(beamtime.root),
        "samples": [s.name for s in beamtime.samples],
        "created": datetime.now(UTC).isoformat(),
    }
    return root


def _create_sample(
    root: zarr.Group,
    sample: SampleScan,
    cfg: ProcessConfig,
    codec: BloscCodec,
    tth_deg: np.ndarray,
    detector_shape: tuple[int, int],
) -> None:
    n, npt, c = sample.n_points, len(tth_deg), cfg.chunk_frames
    g = root.require_group(sample.name)
    g.attrs.update(
        {
            "sample": sample.name,
            "grid_shape": list(sample.grid),
            "scan": sample.scan,
            "metadata_sha256": sample.metadata_sha256,
            "frame_format": sample.frame_format,
            "chunk_frames": c,
        }
    )
    common = {"compressors": [codec], "overwrite": True}
    g.create_array(
        "frames",
        shape=(n, *detector_shape),
        chunks=(min(cfg.frames_chunk_frames, n), *detector_shape),
        dtype="int32",
        fill_value=0,
        dimension_names=("point", "y_px", "x_px"),
        attributes={"units": "counts"},
        **common,
    )
    for name, long_name in (("patterns", "intensity"), ("sigma", "standard error")):
        g.create_array(
            name,
            shape=(n, npt),
            chunks=(min(c, n), npt),
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("point", "tth"),
            attributes={"long_name": long_name, "units": "a.u. (counts / solid angle)"},
            **common,
        )
    tth = g.create_array(
        "tth_deg", shape=(npt,), dtype="float64", dimension_names=("tth",), **common
    )
    tth[:] = tth_deg
    tth.attrs.update({"units": "deg", "long_name": "2theta bin centre"})
    pos = g.create_array(
        "positions", shape=(n, 2), dtype="float64", dimension_names=("point", "axis"), **common
    )
    pos[:] = sample.positions_um
    pos.attrs.update({"columns": ["x_um", "y_um"], "grid_shape": list(sample.grid)})
    g.create_array(
        "status",
        shape=(n,),
        chunks=(min(c, n),),
        dtype="uint8",
        fill_value=STATUS_PENDING,
        dimension_names=("point",),
        attributes={"codes": {str(k): v for k, v in STATUS_MEANING.items()}},
        **common,
    )
    for name in ("reason", "input_checksum"):
        g.create_array(
            name,
            shape=(n,),
            chunks=(min(c, n),),
            dtype=str,
            fill_value="",
            dimension_names=("point",),
            overwrite=True,
        )
    n_chunks = -(-n // c)
    g.create_array(
        "chunk_done",
        shape=(n_chunks,),
        chunks=(1,),
        dtype="uint8",
        fill_value=0,
        dimension_names=("chunk",),
        overwrite=True,
    )


def beside_store(store: str, suffix: str) -> Path:
    """A local folder named after the store: ``<store><suffix>`` beside a local store;
    for a URL (``s3://bucket/bt.zarr``) ``s3-bucket/bt.zarr<suffix>`` under the working
    folder (maps and relabel queues are for people: they stay on local disk)."""
    store = str(store).rstrip("/")
    if "://" in store:
        scheme, rest = store.split("://", 1)
        return Path(f"{scheme}-{rest}{suffix}")
    return Path(f"{store}{suffix}")


def sample_sizes(store: str) -> dict[str, int]:
    """Points per sample of a store written by ``xrdmap process``, in sample order."""
    try:
        root = zarr.open_group(store, mode="r")
        samples = root.attrs["xrdmap"]["samples"]
    except (FileNotFoundError, KeyError):
        raise StoreError(f"{store}: not a store written by `xrdmap process`") from None
    return {s: root[s]["status"].shape[0] for s in samples}


def stored_wavelength_a(root: zarr.Group) -> float:
    """X-ray wavelength (Angstrom) of the PONI the store was integrated with."""
    import yaml

    poni = yaml.safe_load(root.attrs["xrdmap"]["geometry"]["poni"])
    return float(poni["Wavelength"]) * 1e10


def done_chunks(root: zarr.Group, sample: str) -> np.ndarray:
    return root[sample]["chunk_done"][:].astype(bool)
