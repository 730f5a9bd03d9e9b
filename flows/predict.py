"""The ``predict-store`` flow: confidences of every pattern, then the maps."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import TaskRunner

from flows.hooks import record_failure
from flows.runtime import sized_task_runner
from tasks.predict import (
    draw_maps,
    predict_chunk,
    prepare_predictions_task,
    publish_confidences_task,
    resolve_model_version,
)
from xrdmap.config import DaskConfig
from xrdmap.maps import start_drawing_server
from xrdmap.store import exclusive_writer, open_store, patterns_mb, samples
from xrdmap.store import maps_dir as default_maps_dir


@dataclass
class PredictSummary:
    store: str
    version: str
    n_points: int
    model_seconds: float
    seconds: float
    maps: list[str]
    #: per sample: (points abstained, points with a pattern)
    abstained: dict[str, tuple[int, int]]


@flow(name="predict-store", on_failure=[record_failure], on_crashed=[record_failure])
def predict_store(
    store: str,
    registry: str,
    version: str | None = None,
    maps_dir: str | None = None,
    resample: bool = False,
) -> PredictSummary:
    """Write ``version``'s confidences of every sample and publish them when all are
    written (holding the store's write lock), then draw the maps. A store outside the
    model's domain (axis, wavelength, corrections) fails the flow unless ``resample``
    (patterns onto the model's axis through d-spacing, recorded with the confidences)."""
    t0 = time.perf_counter()
    # the maps' processes import on the core that TensorFlow's import leaves idle
    start_drawing_server(len(samples(open_store(store))))  # a figure job per sample
    version = resolve_model_version(registry, version)
    with exclusive_writer(store):
        array, regions, mapping = prepare_predictions_task(store, registry, version, resample)
        futures = [
            predict_chunk.submit(store, r, registry, version, array, mapping) for r in regions
        ]
        wait(futures)
        reports = [f.result() for f in futures]
        publish_confidences_task(store, version, array)
    names = list(dict.fromkeys(r.sample for r in regions))
    maps = draw_maps(store, names, version, maps_dir or str(default_maps_dir(store, version)))
    summary = PredictSummary(
        store=store,
        version=version,
        n_points=sum(r.n_points for r in reports),
        model_seconds=sum(r.model_seconds for r in reports),
        seconds=time.perf_counter() - t0,
        maps=maps,
        abstained={
            name: (
                sum(r.n_abstained for r in reports if r.sample == name),
                sum(r.n_valid for r in reports if r.sample == name),
            )
            for name in names
        },
    )
    n_abstained = sum(a for a, _ in summary.abstained.values())
    get_run_logger().info(
        "%d patterns predicted with %s (model calls %.2f s); %d abstained",
        summary.n_points,
        version,
        summary.model_seconds,
        n_abstained,
    )
    return summary


def predict_runner(store: str, dask: DaskConfig) -> TaskRunner:
    """The Dask cluster that ``dask`` describes, or threads in this process for a store
    whose patterns are smaller than ``dask.in_process_below_mb``."""
    return sized_task_runner(dask, patterns_mb(store))


def run_predict_store(
    store: str,
    registry: str,
    dask: DaskConfig,
    *,
    version: str | None,
    maps_dir: str | None,
    resample: bool = False,
) -> PredictSummary:
    """Run the flow on :func:`predict_runner`."""
    return predict_store.with_options(task_runner=predict_runner(store, dask))(
        store, registry, version, maps_dir, resample
    )
