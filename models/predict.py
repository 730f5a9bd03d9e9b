"""Confidences of every pattern in a store, chunk by chunk, with one model per process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import zarr

from models.preprocess import pattern_features
from models.registry import load_version
from xrdmap.classes import CLASS_NAMES

_MODELS: dict[tuple[str, str], object] = {}


@dataclass(frozen=True)
class PredictRegion:
    """Points ``start..stop-1`` of ``sample``: whole chunks of the confidence array."""

    sample: str
    start: int
    stop: int


@dataclass
class PredictReport:
    sample: str
    n_points: int
    model_seconds: float
    seconds: float


def cached_model(registry: str, version: str):
    key = (registry, version)
    if key not in _MODELS:
        _MODELS[key] = load_version(registry, version)[0]
    return _MODELS[key]


def confidence_path(version: str) -> str:
    return f"confidence/{version}"


def prepare_confidence(store: str, version: str, card: dict, *, chunk: int) -> list[PredictRegion]:
    """Create ``<sample>/confidence/<version>`` (n, 9) arrays; list regions to predict."""
    root = zarr.open_group(store, mode="r+")
    regions = []
    for sample in root.attrs["xrdmap"]["samples"]:
        n = root[sample]["patterns"].shape[0]
        group = root[sample].require_group("confidence")
        group.create_array(
            version,
            shape=(n, len(CLASS_NAMES)),
            chunks=(min(chunk, n), len(CLASS_NAMES)),
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("point", "class"),
            attributes={
                "classes": list(CLASS_NAMES),
                "model_version": version,
                "model_sha256": card["model_sha256"],
                "created": datetime.now(UTC).isoformat(),
            },
            overwrite=True,
        )
        regions += [PredictRegion(sample, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    return regions


def predict_region(
    store: str, region: PredictRegion, registry: str, version: str, *, batch_size: int = 16384
) -> PredictReport:
    """Predict one region's patterns with the model called on large batches."""
    t0 = time.perf_counter()
    model = cached_model(registry, version)
    group = zarr.open_group(store, mode="r+")[region.sample]
    x = pattern_features(group["patterns"][region.start : region.stop])
    out = np.full((len(x), len(CLASS_NAMES)), np.nan, np.float32)
    ok = ~np.isnan(x).any(axis=1)
    t1 = time.perf_counter()
    if ok.any():
        out[ok] = model.predict(x[ok], batch_size=batch_size, verbose=0)
    model_seconds = time.perf_counter() - t1
    group[confidence_path(version)][region.start : region.stop] = out
    return PredictReport(region.sample, len(x), model_seconds, time.perf_counter() - t0)


def latest_predicted(store: str) -> str:
    """The model version of the store's latest confidences ("" before any prediction)."""
    root = zarr.open_group(store, mode="r")
    first = root[root.attrs["xrdmap"]["samples"][0]]
    return first["confidence"].attrs.get("latest", "") if "confidence" in first else ""


def mark_latest(store: str, version: str) -> None:
    """Point every sample's ``confidence`` group at ``version``; earlier ones stay."""
    root = zarr.open_group(store, mode="r+")
    for sample in root.attrs["xrdmap"]["samples"]:
        group = root[sample]["confidence"]
        known = sorted(set(group.attrs.get("versions", [])) | {version})
        group.attrs.update({"latest": version, "versions": known})
