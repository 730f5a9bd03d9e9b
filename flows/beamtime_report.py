"""The ``beamtime-report`` flow: one table and one figure over every sample."""

from __future__ import annotations

from prefect import flow

from flows.hooks import record_failure
from tasks.beamtime_report import beamtime_report_task


@flow(name="beamtime-report", on_failure=[record_failure], on_crashed=[record_failure])
def beamtime_report(
    store: str, sample_sheet: str | None = None, out_dir: str | None = None
) -> list[str]:
    """The report of a store whose samples are fitted (``xrdmap fit``): CSV, PNG and
    Prefect artifacts; ``sample_sheet``: CSV with a ``sample`` column whose other
    columns (condition, exposure years...) join the table."""
    return beamtime_report_task(store, sample_sheet, out_dir)
