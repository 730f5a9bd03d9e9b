"""Prefect's Dask task runner, tolerant of a local cluster that is slow to stop.

Imported by :func:`flows.runtime.dask_task_runner` only when a flow runs (Prefect reads
its settings once, at its first import).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.core import Status
from prefect_dask import DaskTaskRunner

logger = logging.getLogger(__name__)


class _NoDashboardLine(logging.Filter):
    """Drops prefect-dask's "The Dask dashboard is available at ..." line: for a local
    cluster started without a dashboard it names the scheduler's HTTP server (health,
    metrics), where that page does not exist."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The Dask dashboard is available")


_NO_DASHBOARD_LINE = _NoDashboardLine()


class StopTolerantDaskTaskRunner(DaskTaskRunner):
    """A :class:`prefect_dask.DaskTaskRunner` whose cluster timing out while it stops
    does not fail the flow.

    On a loaded machine distributed's nanny gives a worker 5 s to stop, kills it, then
    times out waiting for the killed process to be reaped; the ``TimeoutError`` escaped
    from the runner's exit and marked a flow whose work was all written as FAILED
    (measured: a deployment's pipeline run beside another test process). The workers
    are killed by then; the timeout becomes a warning. An error of the flow itself is
    still raised. The cluster, its close cut short half-way, is then marked closed:
    left "closing", distributed's exit hook waited 10 s more on it when the process
    ended (a command exited 10 s after its flow had finished).

    A local cluster started without a dashboard does not announce one.
    """

    @property
    def client(self) -> Any:
        """prefect-dask's client, made (and its cluster started) on first use."""
        if self._client or self.cluster_kwargs.get("dashboard_address", ":8787") is not None:
            return super().client
        self.logger.addFilter(_NO_DASHBOARD_LINE)
        try:
            return super().client
        finally:
            self.logger.removeFilter(_NO_DASHBOARD_LINE)

    def __exit__(self, *args: Any) -> None:
        try:
            super().__exit__(*args)
        except TimeoutError:
            self._started = False
            if self._cluster is not None:
                self._cluster.status = Status.closed
            logger.warning(
                "the Dask cluster did not stop in time after the work was done; "
                "its worker processes were killed"
            )
