"""Prefect tasks of prediction: the version, its arrays, one region, the latest mark, maps."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from models.predict import PredictReport, Resampling, predict_region, prepare_predictions
from models.registry import latest_version
from tasks.report import png_markdown, store_artifact_key
from xrdmap.maps import figure_pool, write_overview, write_sample_maps
from xrdmap.store import ChunkRegion, publish_confidences


@task(name="resolve-model-version", cache_policy=NO_CACHE)
def resolve_model_version(registry: str, version: str | None) -> str:
    """``version``, or the registry's latest (an error if the registry is empty)."""
    return version or latest_version(registry)


@task(name="prepare-predictions", cache_policy=NO_CACHE)
def prepare_predictions_task(
    store: str, registry: str, version: str, allow_resample: bool
) -> tuple[str, list[ChunkRegion], Resampling | None]:
    """Check the store against the model's domain, lay out unpublished confidence arrays
    of ``version``; their name, the regions and the resampling they need."""
    return prepare_predictions(store, registry, version, allow_resample=allow_resample)


@task(
    name="predict-chunk",
    task_run_name="{region.sample}-{region.start}",
    retries=1,
    cache_policy=NO_CACHE,
)
def predict_chunk(
    store: str,
    region: ChunkRegion,
    registry: str,
    version: str,
    array: str,
    mapping: Resampling | None,
) -> PredictReport:
    """Confidences of one region's patterns (resampled by ``mapping``), into the
    unpublished arrays ``array``."""
    report = predict_region(store, region, registry, version, array, mapping)
    get_run_logger().info(
        "%d patterns, model %.2f s of %.2f s", report.n_points, report.model_seconds, report.seconds
    )
    return report


@task(name="publish-confidences", cache_policy=NO_CACHE)
def publish_confidences_task(store: str, version: str, array: str) -> None:
    """Publish the complete arrays as ``version``'s confidences, the latest version."""
    publish_confidences(store, version, array)


@task(name="draw-maps", cache_policy=NO_CACHE)
def draw_maps(store: str, samples: list[str], version: str, out_dir: str) -> list[str]:
    """PNG maps per sample and an overview; published as markdown artifacts too. The
    samples' maps are drawn in a :func:`xrdmap.maps.figure_pool` while this process
    draws the overview."""
    out = Path(out_dir)
    with figure_pool(len(samples)) as pool:
        drawn = [pool.submit(write_sample_maps, store, s, version, out) for s in samples]
        overview = write_overview(store, version, out)
        paths = []
        for sample, future in zip(samples, drawn, strict=True):
            conf_png, phase_png = future.result()
            paths += [conf_png, phase_png]
            create_markdown_artifact(
                markdown=png_markdown(phase_png, f"{sample}: corrosion products")
                + png_markdown(conf_png, f"{sample}: confidence per class"),
                key=store_artifact_key("maps", store, sample),
                description=f"Maps of {sample}, model {version}",
            )
    create_markdown_artifact(
        markdown=png_markdown(overview, "All samples: corrosion products"),
        key=store_artifact_key("overview", store),
        description=f"Phase maps of every sample, model {version}",
    )
    return [str(p) for p in [*paths, overview]]
