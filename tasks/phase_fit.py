"""Prefect tasks of the phase fit: one sample's fit, its maps."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.report import png_markdown, store_artifact_key
from xrdmap.config import PhasesConfig
from xrdmap.phase_fractions import SampleFit, fit_sample, write_fraction_maps


@task(name="fit-sample", task_run_name="fit-{sample}", retries=1, cache_policy=NO_CACHE)
def fit_sample_task(store: str, sample: str, phases: PhasesConfig) -> SampleFit:
    """Fit every point of ``sample`` and publish the fit in the store."""
    fit = fit_sample(store, sample, phases)
    get_run_logger().info(
        "%s: %d patterns in %.1f s, %d with an unexplained line",
        sample,
        fit.n_points,
        fit.seconds,
        fit.n_unexplained,
    )
    return fit


@task(name="draw-fraction-maps", task_run_name="fractions-{sample}", cache_policy=NO_CACHE)
def draw_fraction_maps(store: str, sample: str, out_dir: str) -> str:
    """The sample's weight-fraction maps, as a PNG and a markdown artifact."""
    path = write_fraction_maps(store, sample, Path(out_dir))
    create_markdown_artifact(
        markdown=png_markdown(path, f"{sample}: phase fractions"),
        key=store_artifact_key("fractions", store, sample),
        description=f"Weight fractions and unexplained lines of {sample}",
    )
    return str(path)
