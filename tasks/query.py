"""Prefect task of active learning: the relabel queue, published as an artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.query import query_points
from tasks.report import store_artifact_key
from xrdmap.config import PhasesConfig
from xrdmap.phases import store_reference_lines
from xrdmap.relabel_queue import new_queue_dir, write_queue


@task(name="build-relabel-queue", cache_policy=NO_CACHE)
def build_relabel_queue(
    store: str,
    n: int,
    phases: PhasesConfig,
    *,
    strategy: str,
    score: str,
    version: str | None,
    out_dir: str | None,
    seed: int,
) -> tuple[str, str]:
    """Select the points, write queue.csv and pictures; returns (queue path, version)."""
    query = query_points(store, n, strategy=strategy, score=score, version=version, seed=seed)
    folder = Path(out_dir) if out_dir else new_queue_dir(store, query.version)
    lines = store_reference_lines(store, phases)
    path = write_queue(store, query.table, query.version, folder, lines)
    shown = query.table.round(3).astype(object)
    rows = shown.where(shown.notna(), None).to_dict(orient="records")
    create_table_artifact(
        table=rows,
        key=store_artifact_key("relabel-queue", store),
        description=f"Points to relabel ({len(rows)}), model {query.version or 'none'}: {path}",
    )
    get_run_logger().info("%d points queued for relabeling in %s", len(rows), path)
    return str(path), query.version
