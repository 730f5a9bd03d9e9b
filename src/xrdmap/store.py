"""The Zarr v3 store of a beamtime: the one owner of its layout.

Every other module asks this one where things are: the samples, their patterns, the
confidences of each model version and which is the latest, the labels group, and the
local folders beside the store where maps and relabel queues go.

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
    <sample>/confidence/<version> (n, 9) float32  per-class confidences of a model
                                        version; group attrs "latest", "versions"
    labels/                              the expert labels (:mod:`xrdmap.label_store`)

Beside a store ``bt.zarr`` (local folders, for people): ``bt.zarr-maps/<version>/``
(PNG maps) and ``bt.zarr-queue/<version>/`` (relabel queues, ``rounds.csv``).

Every per-point array except ``frames`` is chunked by the task chunk, so a task writes
whole chunks of its own region only; ``frames`` chunks divide the task chunk. A chunk
counts as done when ``chunk_done`` is set, after all its data: a re-run skips it.
Dimension names are stored (Zarr v3 ``dimension_names``), so xarray reads each group.
"""

from __future__ import annotations

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
from xrdmap.errors import StoreError
from xrdmap.framesource import STATUS_MEANING, STATUS_OK, STATUS_PENDING
from xrdmap.hashing import sha256_json

LAYOUT_VERSION = 1
#: The root attribute that holds the layout record (samples, provenance, digest).
ROOT_ATTR = "xrdmap"
#: Per-sample group of the confidences, one array per model version.
CONFIDENCE = "confidence"
#: Root group of the expert labels.
LABELS_GROUP = "labels"
MAPS_SUFFIX = "-maps"
QUEUE_SUFFIX = "-queue"


@dataclass(frozen=True)
class ChunkRegion:
    """Points ``start..stop-1`` of one sample, chunk ``index`` of its per-point arrays:
    the unit of work of one task (ingest, predict)."""

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
    """The Blosc codec of the store's arrays, from the compression settings."""
    return BloscCodec(cname=cfg.cname, clevel=cfg.clevel, shuffle=cfg.shuffle)


def chunk_regions(sample: str, n_points: int, chunk_frames: int) -> list[ChunkRegion]:
    """The task regions of one sample: consecutive runs of ``chunk_frames`` points."""
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
    return sha256_json(payload)


def check_compatible(store: str, digest: str) -> bool:
    """True if ``store`` is laid out for ``digest``; False if it has no layout yet."""
    local = Path(store)
    foreign = local.exists() and (
        not local.is_dir() or (any(local.iterdir()) and not (local / "zarr.json").exists())
    )
    if "://" not in store and foreign:
        raise StoreError(f"{store}: exists and is not a Zarr store; refusing to write there")
    try:
        existing = zarr.open_group(store, mode="r", zarr_format=3).attrs.get(ROOT_ATTR)
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
    root.attrs[ROOT_ATTR] = {  # written last: the layout is complete
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


def _beside_store(store: str, suffix: str) -> Path:
    """A local folder named after the store: ``<store><suffix>`` beside a local store;
    for a URL (``s3://bucket/bt.zarr``) ``s3-bucket/bt.zarr<suffix>`` under the working
    folder (maps and relabel queues are for people: they stay on local disk)."""
    store = str(store).rstrip("/")
    if "://" in store:
        scheme, rest = store.split("://", 1)
        return Path(f"{scheme}-{rest}{suffix}")
    return Path(f"{store}{suffix}")


def maps_dir(store: str, version: str) -> Path:
    """Where the PNG maps of model ``version`` go: ``<store>-maps/<version>``."""
    return _beside_store(store, MAPS_SUFFIX) / version


def queue_root(store: str) -> Path:
    """Where the relabel queues and the rounds record go: ``<store>-queue``."""
    return _beside_store(store, QUEUE_SUFFIX)


def open_store(store: str, mode: str = "r") -> zarr.Group:
    """The root group of a store written by ``xrdmap process``; a one-line error if not."""
    try:
        root = zarr.open_group(store, mode=mode)
        root.attrs[ROOT_ATTR]["samples"]
    except (FileNotFoundError, KeyError, TypeError):
        raise StoreError(f"{store}: not a store written by `xrdmap process`") from None
    return root


def samples(root: zarr.Group) -> list[str]:
    """The store's samples, in beamtime order."""
    return list(root.attrs[ROOT_ATTR]["samples"])


def sample_sizes(store: str) -> dict[str, int]:
    """Points per sample of a store written by ``xrdmap process``, in sample order."""
    root = open_store(store)
    return {s: root[s]["status"].shape[0] for s in samples(root)}


def tth_axis(root: zarr.Group) -> np.ndarray:
    """(nbins,) 2theta bin centres in degrees (one axis for every sample)."""
    return root[samples(root)[0]]["tth_deg"][:]


def stored_wavelength_a(root: zarr.Group) -> float:
    """X-ray wavelength (Angstrom) of the PONI the store was integrated with."""
    import yaml

    poni = yaml.safe_load(root.attrs[ROOT_ATTR]["geometry"]["poni"])
    return float(poni["Wavelength"]) * 1e10


def settings_sha256(root: zarr.Group) -> str:
    """The digest of the beamtime and settings the store was built from."""
    return root.attrs[ROOT_ATTR]["settings_sha256"]


def done_chunks(root: zarr.Group, sample: str) -> np.ndarray:
    """(n_chunks,) bool: which task chunks of ``sample`` are complete."""
    return root[sample]["chunk_done"][:].astype(bool)


# One chunk of ingestion: frames as they are read, then the chunk's results, done last.


def open_chunk(store: str, region: ChunkRegion) -> zarr.Group | None:
    """The sample group to write ``region`` into, or None when that chunk is done."""
    group = zarr.open_group(store, mode="r+")[region.sample]
    return None if group["chunk_done"][region.index] else group


def write_frames(group: zarr.Group, start: int, frames: np.ndarray) -> None:
    """Raw frames of points ``start..start+len(frames)-1`` (whole frame chunks)."""
    group["frames"][start : start + len(frames)] = frames


def write_chunk_results(
    group: zarr.Group,
    region: ChunkRegion,
    *,
    intensity: np.ndarray,
    sigma: np.ndarray,
    status: np.ndarray,
    reason: list[str],
    checksum: list[str],
) -> None:
    """The integrated patterns of one chunk and the status of its points; the chunk is
    marked done last, so a crash before leaves it to be redone."""
    rows = slice(region.start, region.stop)
    group["patterns"][rows] = intensity
    group["sigma"][rows] = sigma
    group["reason"][rows] = np.array(reason, dtype=object)
    group["input_checksum"][rows] = np.array(checksum, dtype=object)
    group["status"][rows] = status
    group["chunk_done"][region.index] = 1


# Reading one sample for people: its grid on the map, one point's pattern.


def sample_grid(
    root: zarr.Group, sample: str
) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """The sample's (rows, cols) scan grid and its imshow extent in um (left, right,
    bottom, top), each point's pixel centred on its motor position."""
    rows, cols = root[sample].attrs["grid_shape"]
    pos = root[sample]["positions"][:]
    sx = (pos[:, 0].max() - pos[:, 0].min()) / max(cols - 1, 1)
    sy = (pos[:, 1].max() - pos[:, 1].min()) / max(rows - 1, 1)
    extent = (
        pos[:, 0].min() - sx / 2,
        pos[:, 0].max() + sx / 2,
        pos[:, 1].max() + sy / 2,
        pos[:, 1].min() - sy / 2,
    )
    return (rows, cols), extent


def point_pattern(root: zarr.Group, sample: str, point: int) -> tuple[np.ndarray, np.ndarray]:
    """(2theta axis in degrees, intensity) of one point."""
    group = root[sample]
    return group["tth_deg"][:], group["patterns"][point]


def point_position(root: zarr.Group, sample: str, point: int) -> np.ndarray:
    """(x_um, y_um) of one point."""
    return root[sample]["positions"][point]


def mean_intensity(root: zarr.Group, sample: str) -> np.ndarray:
    """(n,) mean integrated intensity of each point of ``sample`` (NaN: quarantined)."""
    return np.nanmean(root[sample]["patterns"][:], axis=1)


# The pipeline record: which stages ran on the store (the watcher skips recorded ones).


def read_root_record(store: str, name: str) -> dict | None:
    """The root attribute ``name`` of a store, or None (no such store or attribute)."""
    try:
        return zarr.open_group(store, mode="r").attrs.get(name)
    except FileNotFoundError:
        return None


def write_root_record(store: str, name: str, record: dict) -> None:
    """Set the root attribute ``name`` of an xrdmap store to ``record``."""
    open_store(store, mode="r+").attrs[name] = record


def labeled_point_patterns(root: zarr.Group, sample: str, points: np.ndarray) -> np.ndarray:
    """(len(points), nbins) patterns of ``points`` of ``sample``; points without a valid
    pattern (quarantined) raise :class:`StoreError` naming them."""
    group = root[sample]
    points = np.asarray(points, dtype=np.int64)
    bad = points[group["status"].get_orthogonal_selection(points) != STATUS_OK]
    if bad.size:
        raise StoreError(f"{sample}: point(s) {bad.tolist()} have no valid pattern")
    return group["patterns"].get_orthogonal_selection((points, slice(None)))


def random_valid_points(root: zarr.Group, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(patterns, sigma) of up to ``n`` valid points drawn at random over all samples."""
    names = samples(root)
    sizes = np.array([root[s]["status"].shape[0] for s in names])
    picks = np.random.default_rng(seed).choice(sizes.sum(), min(n, sizes.sum()), False)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    patterns, sigma = [], []
    for k, sample in enumerate(names):
        points = np.sort(picks[(picks >= starts[k]) & (picks < starts[k + 1])] - starts[k])
        if points.size == 0:
            continue
        group = root[sample]
        points = points[group["status"].get_orthogonal_selection(points) == STATUS_OK]
        patterns.append(group["patterns"].get_orthogonal_selection((points, slice(None))))
        sigma.append(group["sigma"].get_orthogonal_selection((points, slice(None))))
    return np.concatenate(patterns), np.concatenate(sigma)


@dataclass(frozen=True)
class StorePoints:
    """Every point of a store, samples concatenated in store order."""

    samples: list[str]
    patterns: np.ndarray  #: (n, nbins)
    groups: np.ndarray  #: sample name per point
    points: np.ndarray  #: point index within its sample
    xy: np.ndarray  #: (n, 2) position in um
    valid: np.ndarray  #: status 0 (a pattern was integrated)

    def index_of(self, samples, points) -> np.ndarray:
        """Flat indices of (sample, point) pairs."""
        sizes = [int((self.groups == s).sum()) for s in self.samples]
        offset = dict(zip(self.samples, np.cumsum([0, *sizes[:-1]]), strict=True))
        return np.array([offset[s] + p for s, p in zip(samples, points, strict=True)], int)


def load_store_points(store: str) -> StorePoints:
    """Every point of ``store``, samples concatenated in store order.

    Parameters
    ----------
    store : str
        A store written by ``xrdmap process``.

    Returns
    -------
    StorePoints
        Patterns (n, nbins), sample and point index of each, positions (n, 2) in um,
        and whether each has a pattern (status 0).
    """
    root = open_store(store)
    names = samples(root)
    status = [root[s]["status"][:] for s in names]
    return StorePoints(
        samples=names,
        patterns=np.concatenate([root[s]["patterns"][:] for s in names]),
        groups=np.concatenate([np.full(len(st), s) for s, st in zip(names, status, strict=True)]),
        points=np.concatenate([np.arange(len(st)) for st in status]),
        xy=np.concatenate([root[s]["positions"][:] for s in names]),
        valid=np.concatenate(status) == STATUS_OK,
    )


# Confidences: one array per model version and sample, and the store's latest version.


def create_confidences(
    store: str, version: str, attributes: dict, *, chunk: int
) -> list[ChunkRegion]:
    """Create ``<sample>/confidence/<version>`` NaN arrays for every sample, replacing
    an earlier one of that version.

    Parameters
    ----------
    store : str
        A store written by ``xrdmap process``.
    version : str
        The model version (``v0001``...).
    attributes : dict
        Stored with each array; must hold ``classes``, the column names.
    chunk : int
        Points per Zarr chunk (and per returned region).

    Returns
    -------
    list of ChunkRegion
        The regions to fill, whole chunks each, every sample in order.
    """
    root = open_store(store, mode="r+")
    n_classes = len(attributes["classes"])
    regions = []
    for sample in samples(root):
        n = root[sample]["patterns"].shape[0]
        group = root[sample].require_group(CONFIDENCE)
        group.create_array(
            version,
            shape=(n, n_classes),
            chunks=(min(chunk, n), n_classes),
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("point", "class"),
            attributes={
                **attributes,
                "model_version": version,
                "created": datetime.now(UTC).isoformat(),
            },
            overwrite=True,
        )
        regions += chunk_regions(sample, n, chunk)
    return regions


def read_patterns(store: str, region: ChunkRegion) -> np.ndarray:
    """(n, nbins) integrated patterns of one region (NaN rows: quarantined points)."""
    group = zarr.open_group(store, mode="r")[region.sample]
    return group["patterns"][region.start : region.stop]


def write_confidences(store: str, region: ChunkRegion, version: str, values: np.ndarray) -> None:
    """Write one region's (n, n_classes) confidences of ``version``."""
    group = zarr.open_group(store, mode="r+")[region.sample]
    group[CONFIDENCE][version][region.start : region.stop] = values


def has_confidences(root: zarr.Group, version: str) -> bool:
    """Whether every sample has confidences of ``version``."""
    return all(CONFIDENCE in root[s] and version in root[s][CONFIDENCE] for s in samples(root))


def read_confidences(root: zarr.Group, sample: str, version: str) -> np.ndarray:
    """(n, n_classes) confidences of ``sample`` by model ``version``."""
    group = root[sample]
    if CONFIDENCE not in group or version not in group[CONFIDENCE]:
        raise StoreError(f"{sample}: no confidences of model {version} (run xrdmap predict)")
    return group[CONFIDENCE][version][:]


def latest_predicted(store: str) -> str:
    """The model version of the store's latest confidences ("" before any prediction)."""
    root = open_store(store)
    first = root[samples(root)[0]]
    return first[CONFIDENCE].attrs.get("latest", "") if CONFIDENCE in first else ""


def mark_latest(store: str, version: str) -> None:
    """Point every sample's ``confidence`` group at ``version``; earlier ones stay."""
    root = open_store(store, mode="r+")
    for sample in samples(root):
        group = root[sample][CONFIDENCE]
        known = sorted(set(group.attrs.get("versions", [])) | {version})
        group.attrs.update({"latest": version, "versions": known})
