"""Confidences of every pattern in a store, region by region, one model per process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.registry import load_model, read_card
from xrdmap.classes import CLASS_NAMES
from xrdmap.domain import (
    DomainError,
    PatternDomain,
    check_coverage,
    coverage,
    domain_differences,
    resample,
)
from xrdmap.features import pattern_features
from xrdmap.store import (
    ChunkRegion,
    create_confidences,
    open_store,
    read_patterns,
    store_domain,
    write_confidences,
)
from xrdmap.trust import abstain_mask

#: Points per prediction task: whole chunks of the confidence array, few tasks.
PREDICT_CHUNK = 8000


@dataclass
class PredictReport:
    sample: str
    n_points: int
    n_valid: int  #: points with a pattern (the others have NaN confidences)
    n_abstained: int  #: points whose call is not to be trusted (:func:`abstain_mask`)
    model_seconds: float
    seconds: float


def ensemble_output(
    found: np.ndarray | None, ok: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The network's output for the rows ``ok`` -> (confidences, spread) for every row
    (NaN where not ok): an ensemble's (n, members, classes) gives the mean and the
    standard deviation over members; a single network's (n, classes) no spread."""
    out = np.full((len(ok), n_classes), np.nan, np.float32)
    if found is None or found.ndim == 2:
        if found is not None:
            out[ok] = found
        return out, None
    spread = out.copy()
    out[ok], spread[ok] = found.mean(axis=1), found.std(axis=1)
    return out, spread


@dataclass(frozen=True)
class Resampling:
    """A store's patterns brought onto a model's axis through d-spacing."""

    source: PatternDomain
    target: PatternDomain
    coverage: float

    def record(self) -> dict:
        return {
            "method": "linear in d-spacing; uncovered bins take the nearest measured bin",
            "from": self.source.describe(),
            "to": self.target.describe(),
            "coverage": round(self.coverage, 4),
        }


def domain_mapping(store: str, card: dict, *, allow_resample: bool) -> Resampling | None:
    """How ``store``'s patterns reach the model of ``card``: as they are (``None``), or
    resampled (only with ``allow_resample``); a :class:`DomainError` naming what differs
    otherwise, or when the store covers too little of the model's range."""
    data = store_domain(open_store(store))
    version = card.get("version", "the model")
    if "domain" not in card:  # cards written before domains were recorded: bins only
        if card.get("n_bins") == len(data.tth_deg):
            return None
        raise DomainError(
            f"{store}: {len(data.tth_deg)} 2theta bins, model {version} was trained on "
            f"{card.get('n_bins')} and records no axis to resample to; retrain on this store"
        )
    model = PatternDomain.from_record(card["domain"])
    differ = domain_differences(model, data)
    if not differ:
        return None
    if not allow_resample:
        raise DomainError(
            f"{store}: outside the domain of model {version}: {'; '.join(differ)} "
            "(--resample maps the patterns onto the model's axis through d-spacing)"
        )
    share = coverage(data, model)
    check_coverage(share, data, model)
    return Resampling(data, model, share)


def prepare_predictions(
    store: str,
    registry: str,
    version: str,
    *,
    allow_resample: bool = False,
    chunk: int = PREDICT_CHUNK,
) -> tuple[str, list[ChunkRegion], Resampling | None]:
    """Check the store against the model's domain (:func:`domain_mapping`), then lay
    out unpublished confidence arrays of ``version`` for every sample (the card's sha256
    and any resampling in their attributes; Keras is not loaded); returns their name,
    the regions to predict and the resampling every region needs (``None``: none)."""
    card = read_card(registry, version)
    mapping = domain_mapping(store, card, allow_resample=allow_resample)
    attributes = {"classes": list(CLASS_NAMES), "model_sha256": card["model_sha256"]}
    if mapping is not None:
        attributes["resampled"] = mapping.record()
    array, regions = create_confidences(store, version, attributes, chunk=chunk)
    return array, regions, mapping


def predict_region(
    store: str,
    region: ChunkRegion,
    registry: str,
    version: str,
    array: str,
    mapping: Resampling | None = None,
    *,
    batch_size: int = 16384,
) -> PredictReport:
    """Predict one region's patterns with the model called on large batches, into the
    unpublished confidence arrays ``array`` (resampled onto the model's axis first by
    ``mapping``, from :func:`prepare_predictions`)."""
    t0 = time.perf_counter()
    model = load_model(registry, version)
    patterns = read_patterns(store, region)
    if mapping is not None:
        patterns, _ = resample(patterns, mapping.source, mapping.target)
    x = pattern_features(patterns)
    ok = ~np.isnan(x).any(axis=1)
    t1 = time.perf_counter()
    found = None
    if ok.any():  # one compiled step per batch: Keras' predict loop costs 1.5x as much
        x_ok = x[ok]
        found = np.concatenate(
            [
                model.predict_on_batch(x_ok[i : i + batch_size])
                for i in range(0, len(x_ok), batch_size)
            ]
        )
    model_seconds = time.perf_counter() - t1
    out, spread = ensemble_output(found, ok, len(CLASS_NAMES))
    write_confidences(store, region, array, out, spread)
    return PredictReport(
        region.sample,
        len(x),
        int(ok.sum()),
        int(abstain_mask(out, spread).sum()),
        model_seconds,
        time.perf_counter() - t0,
    )
