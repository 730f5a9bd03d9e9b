"""Prefect task of the beamtime report: the table, the figure, their artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.report import png_markdown, store_artifact_key
from xrdmap.beamtime_report import read_sample_sheet, write_report


@task(name="beamtime-report", cache_policy=NO_CACHE)
def beamtime_report_task(store: str, sample_sheet: str | None, out_dir: str | None) -> list[str]:
    """``report.csv``, ``profiles.csv``, ``report.png``, and the table and figure as
    artifacts of the run."""
    sheet = read_sample_sheet(sample_sheet) if sample_sheet else None
    paths = write_report(store, sheet, Path(out_dir) if out_dir else None)
    table = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in _rows(paths[0])
    ]
    create_table_artifact(
        table=table,
        key=store_artifact_key("report-table", store),
        description="Per sample: rust thickness, composition, alpha/gamma*",
    )
    create_markdown_artifact(
        markdown=png_markdown(paths[2], "Beamtime report"),
        key=store_artifact_key("report", store),
        description="Thickness, rust composition and alpha/gamma* of every sample",
    )
    return [str(p) for p in paths]


def _rows(csv: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(csv).to_dict(orient="records")
