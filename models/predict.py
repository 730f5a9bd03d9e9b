"""Confidences of every pattern in a store, region by region, one model per process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.registry import load_model, read_card
from xrdmap.classes import CLASS_NAMES
from xrdmap.features import pattern_features
from xrdmap.store import (
    ChunkRegion,
    create_confidences,
    read_patterns,
    write_confidences,
)

#: Points per prediction task: whole chunks of the confidence array, few tasks.
PREDICT_CHUNK = 8000


@dataclass
class PredictReport:
    sample: str
    n_points: int
    model_seconds: float
    seconds: float


def prepare_predictions(
    store: str, registry: str, version: str, *, chunk: int = PREDICT_CHUNK
) -> tuple[str, list[ChunkRegion]]:
    """Lay out unpublished confidence arrays of ``version`` for every sample (the card's
    sha256 in their attributes; Keras is not loaded); returns their name and the
    regions to predict."""
    card = read_card(registry, version)
    attributes = {"classes": list(CLASS_NAMES), "model_sha256": card["model_sha256"]}
    return create_confidences(store, version, attributes, chunk=chunk)


def predict_region(
    store: str,
    region: ChunkRegion,
    registry: str,
    version: str,
    array: str,
    *,
    batch_size: int = 16384,
) -> PredictReport:
    """Predict one region's patterns with the model called on large batches, into the
    unpublished confidence arrays ``array``."""
    t0 = time.perf_counter()
    model = load_model(registry, version)
    x = pattern_features(read_patterns(store, region))
    out = np.full((len(x), len(CLASS_NAMES)), np.nan, np.float32)
    ok = ~np.isnan(x).any(axis=1)
    t1 = time.perf_counter()
    if ok.any():
        out[ok] = model.predict(x[ok], batch_size=batch_size, verbose=0)
    model_seconds = time.perf_counter() - t1
    write_confidences(store, region, array, out)
    return PredictReport(region.sample, len(x), model_seconds, time.perf_counter() - t0)
