"""Prefect tasks over the catalogue of beamtimes: which to run, and the pipeline record."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from models.registry import versions
from tasks.report import store_artifact_key
from xrdmap.catalog import (
    BeamtimeEntry,
    completed_beamtimes,
    mark_pipeline_done,
    pipeline_record,
    select_beamtimes,
    store_for,
)


@task(name="new-beamtimes", cache_policy=NO_CACHE)
def new_beamtimes(beamtimes_root: str, stores_root: str) -> list[BeamtimeEntry]:
    """Completed beamtime folders whose store has no pipeline record yet."""
    return [
        entry
        for entry in completed_beamtimes(beamtimes_root)
        if pipeline_record(store_for(stores_root, entry.name)) is None
    ]


@task(name="choose-beamtimes", cache_policy=NO_CACHE)
def choose_beamtimes(
    beamtimes_root: str, names: list[str] | None, since: date | None, until: date | None
) -> list[BeamtimeEntry]:
    """Completed beamtimes named in ``names`` (all if None) started within the dates."""
    return select_beamtimes(
        completed_beamtimes(beamtimes_root), names=names, since=since, until=until
    )


@task(name="latest-model-version", cache_policy=NO_CACHE)
def latest_model_version(registry: str) -> str | None:
    """The registry's newest version, or None while it is empty."""
    known = versions(registry)
    return known[-1] if known else None


@task(name="record-pipeline", cache_policy=NO_CACHE)
def record_pipeline(
    store: str,
    beamtime_dir: str,
    stages: list[str],
    model_version: str | None,
    queue_csv: str | None,
) -> dict:
    """Write the store's pipeline record (the watcher skips it from now on) and publish
    it as an artifact."""
    record = mark_pipeline_done(store, stages, model_version)
    create_markdown_artifact(
        markdown=(
            f"### Pipeline of {beamtime_dir}\n\n| | |\n|---|---|\n| store | {store} |\n"
            f"| stages | {', '.join(stages)} |\n| model | {record['model_version'] or '-'} |\n"
            f"| relabel queue | {queue_csv or '-'} |\n| finished | {record['finished']} |\n"
        ),
        key=store_artifact_key("pipeline", store),
        description=f"Pipeline of {beamtime_dir}",
    )
    return record
