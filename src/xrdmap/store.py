"""The Zarr v3 store of a beamtime: the one owner of its layout.

Every other module asks this one where things are: the samples, their patterns, the
confidences of each model version and which is the latest, the labels group, and the
local folders beside the store where maps and relabel queues go.

One group per sample, under ``samples/`` (so that a sample's name never meets the
store's own groups; stores of layout 1 have them at the root)::

    samples/<sample>/frames        (n, ny, nx) int32   raw frames, chunks of frames_chunk_frames
    samples/<sample>/patterns      (n, npt) float32    azimuthally integrated intensity
    samples/<sample>/sigma         (n, npt) float32    its standard error (Poisson model)
    samples/<sample>/tth_deg       (npt,) float64      2theta bin centres
    samples/<sample>/positions     (n, 2) float64      x_um, y_um motor positions
    samples/<sample>/x_um, y_um    (n,) float64        the same, as xarray coordinates
    samples/<sample>/grid_index    (n, 2) int32        row, col of each point on the map
    samples/<sample>/status        (n,) uint8          0 = ok; codes in the attributes
    samples/<sample>/reason        (n,) str            why a point was quarantined ("" if ok)
    samples/<sample>/input_checksum (n,) str           the frame's checksum as read
    samples/<sample>/chunk_done    (n_chunks,) uint8   1 once a chunk's outputs are all written
    samples/<sample>/chunk_source  (n_chunks,) str     the identity of the frame files a chunk
                                               was read from (checked before resuming)
    samples/<sample>/confidence/<version> (n, 9) float32  per-class confidences of a model
                                        version; group attrs "latest", "versions"
    samples/<sample>/spread/<version>     (n, 9) float32  their standard deviation over the
                                        ensemble's members (NaN: a single network)
    samples/<sample>/phase_fit/<name>/   the phase fit (:mod:`xrdmap.phase_fractions`): per
                                        point fractions, uncertainties, unexplained
                                        intensity; group attr "published" names the
                                        complete one
    labels/                              the expert labels (:mod:`xrdmap.label_store`)

Beside a store ``bt.zarr`` (local folders, for people): ``bt.zarr-maps/<version>/``
(PNG maps), ``bt.zarr-queue/<version>/`` (relabel queues, ``rounds.csv``) and
``bt.zarr-report/`` (the beamtime report).

Every per-point array except ``frames`` is chunked by the task chunk, so a task writes
whole chunks of its own region only; ``frames`` chunks divide the task chunk. A chunk
counts as done when ``chunk_done`` is set, after all its data: a re-run skips it.
Dimension names and coordinates are stored (Zarr v3 ``dimension_names``; ``tth_deg``,
``class`` and ``phase`` are arrays of their own dimension's name; the sample group's
``coordinates`` attribute names ``x_um`` and ``y_um``), so ``xarray.open_zarr(store,
group="samples/<sample>")`` reads a sample with its axes. The root's ``zarr.json``
holds the whole store's consolidated metadata (what xarray opens in one read); every
writer refreshes it at its end (:func:`exclusive_writer`), and xrdmap's own reads never
use it (``use_consolidated=False``: never a stale view).
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numcodecs
import numcodecs.blosc
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from xrdmap.config import CompressionConfig, ProcessConfig
from xrdmap.domain import PATTERN_SETTINGS, PatternDomain
from xrdmap.errors import StoreBusyError, StoreError
from xrdmap.hashing import sha256_json
from xrdmap.locks import WRITE, store_lock
from xrdmap.sources import STATUS_MEANING, STATUS_OK, STATUS_PENDING

if TYPE_CHECKING:  # pyFAI, which the beamtime imports, is not needed to read a store
    from xrdmap.beamtime import Beamtime, SampleScan

#: 2: path-free settings record, beamtime.json in it, chunk_source per chunk;
#: 3: samples under ``samples/``; 4: ``grid_index`` per sample (maps of snake and
#: fly scans; older stores are read as row-major); 5: xarray coordinates (``tth_deg``,
#: ``x_um`` and ``y_um`` per point, ``class`` and ``phase`` names) and consolidated
#: metadata.
LAYOUT_VERSION = 5
#: Per-point coordinate arrays of a sample (the columns of ``positions``).
POINT_COORDINATES = ("x_um", "y_um")
#: The root attribute that holds the layout record (samples, provenance, digest).
ROOT_ATTR = "xrdmap"
#: Per-sample group of the confidences, one array per model version.
CONFIDENCE = "confidence"
#: Per-sample group of the members' spread, one array per confidence array, same name.
SPREAD = "spread"
PHASE_FIT = "phase_fit"
#: The coordinate arrays of the class and phase names (of their own dimension's name).
CLASS_COORDINATE = "class"
PHASE_COORDINATE = "phase"
#: Root group of the expert labels.
LABELS_GROUP = "labels"
#: Root group of the samples: their names never meet the store's own groups.
SAMPLES_GROUP = "samples"
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


#: Processing settings that change how a store is made, never what it holds: where it
#: runs (the Dask cluster, the integration's device) and the frames per sparse product
#: (the same patterns to the bit at any size, tests/core/test_integrate.py). They are
#: left out of a store's settings, and a store that recorded them (before they were left
#: out) is not refused for them (:func:`_without_run_only`).
RUN_ONLY_SETTINGS: dict[str, bool | set[str]] = {
    "dask": True,
    "integration": {"device", "batch_frames"},
}


def store_settings(beamtime: Beamtime, cfg: ProcessConfig, provenance: dict) -> dict:
    """What makes a store's contents, by content and not by path (a beamtime moved to
    another folder resumes): the layout, the acquisition's description (beamtime.json or
    the manifest, each sample's frames and positions), the PONI and mask, what completes
    the PONI (pixel size, orientation, when given), the processing settings (not how
    they run: :data:`RUN_ONLY_SETTINGS`)."""
    geometry = provenance["geometry"]
    settings = {
        "layout": LAYOUT_VERSION,
        provenance["description"]: provenance["description_sha256"],
        "samples": [[s.name, s.n_points, s.metadata_sha256] for s in beamtime.samples],
        "PONI": geometry["poni_sha256"],
        "mask": geometry["mask_sha256"],
        "count_cutoff": beamtime.count_cutoff,
        "process": cfg.model_dump(mode="json", exclude=RUN_ONLY_SETTINGS),
    }
    if beamtime.pixel_size_m is not None:
        settings["pixel_size_m"] = list(beamtime.pixel_size_m)
    if beamtime.orientation is not None:
        settings["orientation"] = beamtime.orientation
    return settings


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The settings that differ, as ``name: old -> new`` (nested names dotted; an input
    file's content by the start of its SHA-256, one the other side lacks as none)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: object) -> str:
    """A recorded setting in a few characters."""
    if value is None:
        return "none"
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return f"sha256 {value[:8]}"
    text = str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _without_run_only(recorded: dict) -> dict:
    """A store's recorded settings less :data:`RUN_ONLY_SETTINGS`, as
    :func:`store_settings` makes them now (stores laid out before the batch size was
    left out recorded it)."""
    if "process" not in recorded:
        return recorded
    process = {}
    for name, value in recorded["process"].items():
        rule = RUN_ONLY_SETTINGS.get(name)
        if rule is True:
            continue
        if isinstance(rule, set) and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in rule}
        process[name] = value
    return {**recorded, "process": process}


def check_compatible(store: str, settings: dict) -> bool:
    """True if ``store`` is laid out for ``settings`` (:func:`store_settings`); False
    if it has no layout yet; a :class:`StoreError` naming what differs otherwise."""
    local = Path(store)
    foreign = local.exists() and (
        not local.is_dir() or (any(local.iterdir()) and not (local / "zarr.json").exists())
    )
    if "://" not in store and foreign:
        raise StoreError(f"{store}: exists and is not a Zarr store; refusing to write there")
    try:
        existing = zarr.open_group(
            store, mode="r", zarr_format=3, use_consolidated=False
        ).attrs.get(ROOT_ATTR)
    except FileNotFoundError:
        return False
    if existing is None:
        return False
    if existing.get("layout_version") != LAYOUT_VERSION:
        raise StoreError(
            f"{store}: laid out by another xrdmap version (layout "
            f"{existing.get('layout_version')}, this one writes {LAYOUT_VERSION}); "
            "process into a new store"
        )
    recorded = _without_run_only(existing.get("settings", {}))
    if existing.get("settings_sha256") != sha256_json(settings) and (
        sha256_json(recorded) != sha256_json(settings)
    ):
        differ = _differences(recorded, settings)
        raise StoreError(
            f"{store}: built {existing.get('created')} from {existing.get('beamtime')} with "
            f"other inputs or settings ({'; '.join(differ[:3]) or 'unknown'}); "
            "process into a new store"
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
    settings = store_settings(beamtime, cfg, provenance)
    if check_compatible(store, settings):
        return zarr.open_group(store, mode="r+", zarr_format=3, use_consolidated=False)
    root = zarr.open_group(store, mode="a", zarr_format=3, use_consolidated=False)
    codec = blosc_codec(cfg.compression)
    for sample in beamtime.samples:
        _create_sample(root, sample, cfg, codec, tth_deg, detector_shape)
    root.attrs[ROOT_ATTR] = {  # written last: the layout is complete
        **provenance,
        "layout_version": LAYOUT_VERSION,
        "settings": settings,
        "settings_sha256": sha256_json(settings),
        "beamtime": str(beamtime.root),
        "description_file": str(beamtime.description),
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
    g = root.require_group(SAMPLES_GROUP).require_group(sample.name)
    g.attrs.update(
        {
            "sample": sample.name,
            "grid_shape": list(sample.grid),
            "scan": sample.scan,
            "metadata_sha256": sample.metadata_sha256,
            "frame_format": sample.frame_format,
            "chunk_frames": c,
            "coordinates": " ".join(POINT_COORDINATES),  # read by xarray
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
            dimension_names=("point", "tth_deg"),
            attributes={"long_name": long_name, "units": "a.u. (counts / solid angle)"},
            **common,
        )
    tth = g.create_array(
        "tth_deg", shape=(npt,), dtype="float64", dimension_names=("tth_deg",), **common
    )
    tth[:] = tth_deg
    tth.attrs.update({"units": "deg", "long_name": "2theta bin centre"})
    pos = g.create_array(
        "positions", shape=(n, 2), dtype="float64", dimension_names=("point", "axis"), **common
    )
    pos[:] = sample.positions_um
    pos.attrs.update({"columns": ["x_um", "y_um"], "grid_shape": list(sample.grid)})
    for column, name in enumerate(POINT_COORDINATES):  # the same, as xarray coordinates
        coord = g.create_array(
            name, shape=(n,), dtype="float64", dimension_names=("point",), **common
        )
        coord[:] = sample.positions_um[:, column]
        coord.attrs.update({"units": "um", "long_name": f"{name[0]} motor position"})
    cell = g.create_array(
        "grid_index", shape=(n, 2), dtype="int32", dimension_names=("point", "axis"), **common
    )
    cell[:] = sample.grid_index
    cell.attrs.update({"columns": ["row", "col"], "grid_shape": list(sample.grid)})
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
    g.create_array(
        "chunk_source",
        shape=(n_chunks,),
        chunks=(1,),
        dtype=str,
        fill_value="",
        dimension_names=("chunk",),
        attributes={"long_name": "identity of the chunk's frame files (names, sizes, times)"},
        overwrite=True,
    )
    g.create_array(
        "chunk_source_ok",
        shape=(n_chunks,),
        chunks=(1,),
        dtype=str,
        fill_value="",
        dimension_names=("chunk",),
        attributes={"long_name": "identity of the frame files of the chunk's ok points"},
        overwrite=True,
    )


@contextmanager
def writing(store: str) -> Iterator[None]:
    """A disk error while writing ``store`` (full, read-only, gone) becomes a
    :class:`StoreError` that names the store: one line for the user, not a traceback."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"{store}: cannot write: {exc.strerror or exc}") from exc


def consolidate(store: str) -> None:
    """Gather the metadata of every group and array of ``store`` into its root's
    ``zarr.json`` (Zarr's consolidated metadata: xarray opens a sample in one read).
    Rewrites the root's metadata: call it only holding the write lock. A store not laid
    out yet (a run that failed before its layout) is left alone."""
    if read_root_record(store, ROOT_ATTR) is None:
        return
    with writing(store), warnings.catch_warnings():
        # Zarr notes that v3 consolidated metadata is its own extension: xarray's default
        # and what it asks for; other readers ignore it.
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        zarr.consolidate_metadata(store, zarr_format=3)


@contextmanager
def exclusive_writer(store: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the store's write lock inside the block (a refusal names the holder) and
    refresh its consolidated metadata at the end, however the block ends: a failed
    writer may have removed what the old metadata lists."""
    with store_lock(store, WRITE, wait_s=wait_s):
        try:
            yield
        except BaseException:
            with suppress(StoreError, FileNotFoundError):  # the block's error comes first
                consolidate(store)
            raise
        consolidate(store)


def consolidate_unless_busy(store: str) -> None:
    """Refresh the consolidated metadata after a write outside the write lock (labels),
    unless a writer holds the lock: that one refreshes it at its end."""
    with suppress(StoreBusyError), exclusive_writer(store):
        pass


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


#: The folder of the phase fit's fraction maps, beside the models' (:func:`maps_dir`).
PHASE_FIT_MAPS = "phase-fit"


def report_dir(store: str) -> Path:
    """Where the beamtime report goes: ``<store>-report/``."""
    return _beside_store(store, "-report")


def queue_root(store: str) -> Path:
    """Where the relabel queues and the rounds record go: ``<store>-queue``."""
    return _beside_store(store, QUEUE_SUFFIX)


def open_store(store: str, mode: str = "r") -> zarr.Group:
    """The root group of a store written by ``xrdmap process``; a one-line error if not."""
    try:
        root = zarr.open_group(store, mode=mode, use_consolidated=False)
        root.attrs[ROOT_ATTR]["samples"]
    except (FileNotFoundError, KeyError, TypeError):
        raise StoreError(f"{store}: not a store written by `xrdmap process`") from None
    return root


def sample_group(root: zarr.Group, sample: str) -> zarr.Group:
    """The group of ``sample``: ``samples/<sample>`` (at the root in stores of layout 1)."""
    return root[SAMPLES_GROUP][sample] if SAMPLES_GROUP in root else root[sample]


def samples(root: zarr.Group) -> list[str]:
    """The store's samples, in beamtime order."""
    return list(root.attrs[ROOT_ATTR]["samples"])


def sample_sizes(store: str) -> dict[str, int]:
    """Points per sample of a store written by ``xrdmap process``, in sample order."""
    root = open_store(store)
    return {s: sample_group(root, s)["status"].shape[0] for s in samples(root)}


def patterns_mb(store: str) -> float:
    """Uncompressed size of every sample's patterns, MB (what a prediction reads)."""
    root = open_store(store)
    return sum(sample_group(root, s)["patterns"].nbytes for s in samples(root)) / 1e6


def tth_axis(root: zarr.Group) -> np.ndarray:
    """(nbins,) 2theta bin centres in degrees (one axis for every sample)."""
    return sample_group(root, samples(root)[0])["tth_deg"][:]


def stored_wavelength_a(root: zarr.Group) -> float:
    """X-ray wavelength (Angstrom) of the PONI the store was integrated with."""
    import yaml

    poni = yaml.safe_load(root.attrs[ROOT_ATTR]["geometry"]["poni"])
    return float(poni["Wavelength"]) * 1e10


def store_domain(root: zarr.Group) -> PatternDomain:
    """The patterns' domain: 2theta axis, wavelength, intensity-shaping integration
    settings (what a model trained on this store is valid for)."""
    integration = root.attrs[ROOT_ATTR]["settings"]["process"]["integration"]
    return PatternDomain(
        tth_axis(root),
        stored_wavelength_a(root),
        {k: integration.get(k) for k in PATTERN_SETTINGS},
    )


def settings_sha256(root: zarr.Group) -> str:
    """The digest of the beamtime and settings the store was built from."""
    return root.attrs[ROOT_ATTR]["settings_sha256"]


def done_chunks(root: zarr.Group, sample: str) -> np.ndarray:
    """(n_chunks,) bool: which task chunks of ``sample`` are complete."""
    return sample_group(root, sample)["chunk_done"][:].astype(bool)


def chunk_sources(root: zarr.Group, sample: str) -> tuple[np.ndarray, np.ndarray]:
    """(n_chunks,) str each: the identity of the frame files each done chunk was read
    from, all of them and those of its points ingested ok."""
    group = sample_group(root, sample)
    return group["chunk_source"][:], group["chunk_source_ok"][:]


def quarantine_counts(store: str) -> dict[str, tuple[int, int]]:
    """Per sample: points processed but quarantined, and all points."""
    root = open_store(store)
    out = {}
    for sample in samples(root):
        status = point_status(root, sample)
        bad = (status != STATUS_OK) & (status != STATUS_PENDING)
        out[sample] = (int(bad.sum()), int(status.size))
    return out


def point_status(root: zarr.Group, sample: str) -> np.ndarray:
    """(n,) uint8: each point's status code (STATUS_MEANING)."""
    return sample_group(root, sample)["status"][:]


# One chunk of ingestion: frames as they are read, then the chunk's results, done last.


def open_chunk(store: str, region: ChunkRegion, *, retry: bool = False) -> zarr.Group | None:
    """The sample group to write ``region`` into, or None when that chunk is done (and
    not being retried)."""
    group = sample_group(open_store(store, mode="r+"), region.sample)
    return None if group["chunk_done"][region.index] and not retry else group


def write_frames(group: zarr.Group, start: int, frames: np.ndarray) -> None:
    """Raw frames of points ``start..start+len(frames)-1`` (whole frame chunks). Every
    chunk is stored, even all zero (missing frames): zarr's check for an empty chunk
    compares each 38 MB block with the fill value (0.01-0.03 of 0.3 ms per frame)."""
    frames_array = group["frames"].with_config({"write_empty_chunks": True})
    frames_array[start : start + len(frames)] = frames


def write_point_results(
    group: zarr.Group,
    points: slice | np.ndarray,
    *,
    intensity: np.ndarray,
    sigma: np.ndarray,
    status: np.ndarray,
    reason: list[str],
    checksum: list[str],
) -> None:
    """The integrated patterns of ``points`` (a chunk's slice, or the quarantined points
    read again) and their status, written last: a crash before leaves the old status."""

    def put(name: str, values: np.ndarray) -> None:
        if isinstance(points, slice):
            group[name][points] = values
        else:
            group[name].oindex[points] = values

    put("patterns", intensity)
    put("sigma", sigma)
    put("reason", np.array(reason, dtype=object))
    put("input_checksum", np.array(checksum, dtype=object))
    put("status", status)


def mark_chunk_done(group: zarr.Group, region: ChunkRegion, *, source: str, source_ok: str) -> None:
    """Record the identity of the chunk's frame files (all of them, and those of its
    points ingested ok) and mark it done: last, so a crash before leaves it to redo."""
    group["chunk_source"][region.index] = source
    group["chunk_source_ok"][region.index] = source_ok
    group["chunk_done"][region.index] = 1


# Reading one sample for people: its grid on the map, one point's pattern.


def map_extent(root: zarr.Group, sample: str) -> tuple[float, float, float, float]:
    """The imshow extent in um (left, right, bottom, top) of the sample's map grid
    (:func:`on_grid`), each cell centred on its motor position."""
    rows, cols = sample_group(root, sample).attrs["grid_shape"]
    pos = sample_group(root, sample)["positions"][:]
    sx = (pos[:, 0].max() - pos[:, 0].min()) / max(cols - 1, 1)
    sy = (pos[:, 1].max() - pos[:, 1].min()) / max(rows - 1, 1)
    sx, sy = (sx or sy or 1.0), (sy or sx or 1.0)  # one row or column: square cells
    extent = (
        pos[:, 0].min() - sx / 2,
        pos[:, 0].max() + sx / 2,
        pos[:, 1].max() + sy / 2,
        pos[:, 1].min() - sy / 2,
    )
    return extent


def on_grid(root: zarr.Group, sample: str, values: np.ndarray) -> np.ndarray:
    """Per-point ``values`` (n, ...) placed on the sample's (rows, cols, ...) map grid;
    cells no point visited are NaN. Stores made before ``grid_index`` are row-major."""
    group = sample_group(root, sample)
    rows, cols = group.attrs["grid_shape"]
    values = np.asarray(values, dtype=np.float64)
    if "grid_index" not in group:
        return values.reshape(rows, cols, *values.shape[1:])
    index = group["grid_index"][:]
    out = np.full((rows, cols, *values.shape[1:]), np.nan)
    out[index[:, 0], index[:, 1]] = values
    return out


def point_pattern(root: zarr.Group, sample: str, point: int) -> tuple[np.ndarray, np.ndarray]:
    """(2theta axis in degrees, intensity) of one point."""
    group = sample_group(root, sample)
    return group["tth_deg"][:], group["patterns"][point]


def point_position(root: zarr.Group, sample: str, point: int) -> np.ndarray:
    """(x_um, y_um) of one point."""
    return sample_group(root, sample)["positions"][point]


def mean_intensity(root: zarr.Group, sample: str) -> np.ndarray:
    """(n,) mean integrated intensity of each point of ``sample`` (NaN: quarantined)."""
    return np.nanmean(sample_group(root, sample)["patterns"][:], axis=1)


# The pipeline record: which stages ran on the store (the watcher skips recorded ones).


def read_root_record(store: str, name: str) -> dict | None:
    """The root attribute ``name`` of a store, or None (no such store or attribute)."""
    try:
        return zarr.open_group(store, mode="r", use_consolidated=False).attrs.get(name)
    except FileNotFoundError:
        return None


def write_root_record(store: str, name: str, record: dict) -> None:
    """Set the root attribute ``name`` of an xrdmap store to ``record`` (waiting up to
    a minute for a running writer: the root's metadata has one writer at a time)."""
    with exclusive_writer(store, wait_s=60.0), writing(store):
        open_store(store, mode="r+").attrs[name] = record


def labeled_point_patterns(root: zarr.Group, sample: str, points: np.ndarray) -> np.ndarray:
    """(len(points), nbins) patterns of ``points`` of ``sample``; points without a valid
    pattern (quarantined) raise :class:`StoreError` naming them."""
    group = sample_group(root, sample)
    points = np.asarray(points, dtype=np.int64)
    bad = points[group["status"].get_orthogonal_selection(points) != STATUS_OK]
    if bad.size:
        raise StoreError(f"{sample}: point(s) {bad.tolist()} have no valid pattern")
    return group["patterns"].get_orthogonal_selection((points, slice(None)))


@dataclass(frozen=True)
class DrawnPoints:
    """Valid points drawn at random over a store's samples, with where they lie."""

    patterns: np.ndarray  #: (m, nbins)
    sigma: np.ndarray  #: (m, nbins)
    samples: np.ndarray  #: (m,) sample name per point
    points: np.ndarray  #: (m,) point index within its sample


def random_valid_points(root: zarr.Group, n: int, seed: int) -> DrawnPoints:
    """Up to ``n`` valid points drawn at random over all samples."""
    names = samples(root)
    sizes = np.array([sample_group(root, s)["status"].shape[0] for s in names])
    picks = np.random.default_rng(seed).choice(sizes.sum(), min(n, sizes.sum()), False)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    patterns, sigma, where, index = [], [], [], []
    for k, sample in enumerate(names):
        points = np.sort(picks[(picks >= starts[k]) & (picks < starts[k + 1])] - starts[k])
        if points.size == 0:
            continue
        group = sample_group(root, sample)
        points = points[group["status"].get_orthogonal_selection(points) == STATUS_OK]
        patterns.append(group["patterns"].get_orthogonal_selection((points, slice(None))))
        sigma.append(group["sigma"].get_orthogonal_selection((points, slice(None))))
        where.append(np.full(points.size, sample))
        index.append(points)
    return DrawnPoints(
        np.concatenate(patterns),
        np.concatenate(sigma),
        np.concatenate(where),
        np.concatenate(index),
    )


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
    status = [sample_group(root, s)["status"][:] for s in names]
    return StorePoints(
        samples=names,
        patterns=np.concatenate([sample_group(root, s)["patterns"][:] for s in names]),
        groups=np.concatenate([np.full(len(st), s) for s, st in zip(names, status, strict=True)]),
        points=np.concatenate([np.arange(len(st)) for st in status]),
        xy=np.concatenate([sample_group(root, s)["positions"][:] for s in names]),
        valid=np.concatenate(status) == STATUS_OK,
    )


# Confidences: one array per model version and sample, published only when complete.
#
# A prediction writes a new array (``<version>``, or ``<version>-<token>`` while an
# earlier one of that version is published), then publishes it: the confidence group's
# ``published`` attribute maps each version to its array, ``latest`` names the newest,
# and the array it replaces is removed. Readers only see published arrays, so a killed
# prediction never shows as all-NaN confidences.


def create_confidences(
    store: str, version: str, attributes: dict, *, chunk: int
) -> tuple[str, list[ChunkRegion]]:
    """Create unpublished NaN confidence arrays of ``version`` for every sample.

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
    name : str
        The arrays' name in each sample's ``confidence`` group (to write and publish).
    regions : list of ChunkRegion
        The regions to fill, whole chunks each, every sample in order.
    """
    with writing(store):
        root = open_store(store, mode="r+")
        groups = [sample_group(root, sample).require_group(CONFIDENCE) for sample in samples(root)]
        spreads = [sample_group(root, sample).require_group(SPREAD) for sample in samples(root)]
        for group, spread in zip(groups, spreads, strict=True):
            for g in (group, spread):
                if CLASS_COORDINATE not in g:
                    _name_coordinate(g, CLASS_COORDINATE, attributes["classes"])
            published = set(group.attrs.get("published", {}).values())
            for key in list(group.array_keys()):  # left unpublished by a killed run
                attrs = group[key].attrs
                mine = attrs.get("model_version") == version and attrs.get("complete") is False
                if mine and key not in published:
                    del group[key]
                    if key in spread:
                        del spread[key]
        taken = {key for g in groups for key in g.array_keys()}
        name = version if version not in taken else f"{version}-{secrets.token_hex(4)}"
        n_classes = len(attributes["classes"])
        regions = []
        for sample, group, spread in zip(samples(root), groups, spreads, strict=True):
            n = sample_group(root, sample)["patterns"].shape[0]
            layout = {
                "shape": (n, n_classes),
                "chunks": (min(chunk, n), n_classes),
                "dtype": "float32",
                "fill_value": np.nan,
                "dimension_names": ("point", CLASS_COORDINATE),
            }
            group.create_array(
                name,
                **layout,
                attributes={
                    **attributes,
                    "model_version": version,
                    "complete": False,
                    "created": datetime.now(UTC).isoformat(),
                },
            )
            spread.create_array(
                name,
                **layout,
                overwrite=True,
                attributes={
                    "long_name": "standard deviation of the confidence over the members",
                    "model_version": version,
                },
            )
            regions += chunk_regions(sample, n, chunk)
        return name, regions


def _name_coordinate(group: zarr.Group, name: str, values: list[str]) -> None:
    """The names along dimension ``name`` as the array ``name``: xarray's coordinate."""
    coord = group.create_array(name, shape=(len(values),), dtype=str, dimension_names=(name,))
    coord[:] = np.asarray(values)


def read_patterns(store: str, region: ChunkRegion) -> np.ndarray:
    """(n, nbins) integrated patterns of one region (NaN rows: quarantined points)."""
    group = sample_group(open_store(store), region.sample)
    return group["patterns"][region.start : region.stop]


def write_confidences(
    store: str,
    region: ChunkRegion,
    name: str,
    values: np.ndarray,
    spread: np.ndarray | None = None,
) -> None:
    """Write one region's (n, n_classes) confidences and their spread over the members
    (``None``: one network, no spread; left NaN) into the unpublished arrays ``name``."""
    with writing(store):
        group = sample_group(open_store(store, mode="r+"), region.sample)
        group[CONFIDENCE][name][region.start : region.stop] = values
        if spread is not None:
            group[SPREAD][name][region.start : region.stop] = spread


def _published(group: zarr.Group, version: str) -> str | None:
    """The array holding ``version``'s published confidences in a ``confidence`` group."""
    name = group.attrs.get("published", {}).get(version)
    if name is None and version in group.attrs.get("versions", []) and version in group:
        name = version  # a store written before publication existed: complete arrays
    return name


def has_confidences(root: zarr.Group, version: str) -> bool:
    """Whether every sample has published confidences of ``version``."""
    return all(
        CONFIDENCE in sample_group(root, s)
        and _published(sample_group(root, s)[CONFIDENCE], version) is not None
        for s in samples(root)
    )


def read_confidences(root: zarr.Group, sample: str, version: str) -> np.ndarray:
    """(n, n_classes) published confidences of ``sample`` by model ``version``."""
    group = sample_group(root, sample)
    name = _published(group[CONFIDENCE], version) if CONFIDENCE in group else None
    if name is None:
        raise StoreError(
            f"{sample}: no complete confidences of model {version} (run xrdmap predict)"
        )
    return group[CONFIDENCE][name][:]


def confidence_attributes(root: zarr.Group, sample: str, version: str) -> dict:
    """The attributes of ``sample``'s published confidences of ``version`` (the model's
    sha256, the class names, any resampling); empty if there are none."""
    group = sample_group(root, sample)
    name = _published(group[CONFIDENCE], version) if CONFIDENCE in group else None
    return dict(group[CONFIDENCE][name].attrs) if name is not None else {}


def read_spread(root: zarr.Group, sample: str, version: str) -> np.ndarray:
    """(n, n_classes) spread over the members of the published confidences of
    ``version`` (NaN for a single network, or a store predicted before spreads)."""
    group = sample_group(root, sample)
    name = _published(group[CONFIDENCE], version) if CONFIDENCE in group else None
    if name is None:
        raise StoreError(
            f"{sample}: no complete confidences of model {version} (run xrdmap predict)"
        )
    if SPREAD in group and name in group[SPREAD]:
        return group[SPREAD][name][:]
    return np.full(group[CONFIDENCE][name].shape, np.nan, np.float32)


def latest_predicted(store: str) -> str:
    """The model version of the store's latest confidences ("" before any prediction)."""
    root = open_store(store)
    first = sample_group(root, samples(root)[0])
    return first[CONFIDENCE].attrs.get("latest", "") if CONFIDENCE in first else ""


def publish_confidences(store: str, version: str, name: str) -> None:
    """Publish the complete arrays ``name`` as ``version``'s confidences and make it the
    latest version; the arrays they replace are removed, other versions stay."""
    with writing(store):
        root = open_store(store, mode="r+")
        for sample in samples(root):
            group = sample_group(root, sample)[CONFIDENCE]
            group[name].attrs["complete"] = True
            replaced = _published(group, version)
            published = {**group.attrs.get("published", {}), version: name}
            known = sorted(set(group.attrs.get("versions", [])) | {version})
            group.attrs.update({"published": published, "latest": version, "versions": known})
            if replaced is not None and replaced != name:
                del group[replaced]
                spread = sample_group(root, sample).get(SPREAD)
                if spread is not None and replaced in spread:
                    del spread[replaced]


# The phase fit of a sample is written into a fresh group beside the published one and
# published (the ``phase_fit`` group's ``published`` attribute) once complete; the one
# it replaces is removed. A killed fit leaves the published one untouched.


def write_phase_fit(store: str, sample: str, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """Write one sample's complete phase-fit arrays (first axis: the sample's points)
    and publish them."""
    with writing(store):
        group = sample_group(open_store(store, mode="r+"), sample).require_group(PHASE_FIT)
        name = f"fit-{secrets.token_hex(4)}"
        fit = group.create_group(name, attributes=attrs)
        for key, values in arrays.items():
            dims = ("point", PHASE_COORDINATE)[: values.ndim]
            fit.create_array(
                key, data=values, chunks=values.shape, dimension_names=dims, overwrite=True
            )
        _name_coordinate(fit, PHASE_COORDINATE, attrs["phases"])
        group.attrs["published"] = name
        for key in list(group.group_keys()):  # the replaced fit, and any killed one
            if key != name:
                del group[key]


def read_phase_fit(root: zarr.Group, sample: str) -> zarr.Group:
    """The published phase fit of ``sample`` (a StoreError naming the sample if none)."""
    group = sample_group(root, sample)
    name = group[PHASE_FIT].attrs.get("published") if PHASE_FIT in group else None
    if name is None:
        raise StoreError(f"{sample}: no phase fit (run xrdmap fit)")
    return group[PHASE_FIT][name]
