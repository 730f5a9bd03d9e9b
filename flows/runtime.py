"""Where flows report to: the configured Prefect server, or one temporary local server.

Without ``PREFECT_API_URL``, Prefect would start a temporary server in every process
that runs a task, Dask workers included, and their task runs would land in separate,
throw-away databases. :func:`prefect_api` starts one temporary server instead and
exports its address, so the workers of a local cluster (spawned processes inherit the
environment) report to the same place as the flow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


def quiet_defaults(*, console_level: str = "INFO") -> None:
    """No telemetry lookups (there is no network), no Dask chatter on the terminal, and
    Prefect's console at ``console_level`` (the API still receives every log)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", console_level)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read by spawned workers
    os.environ.setdefault("SILX_OPENCL", "0")  # no OpenCL device here: pyFAI uses Cython
    logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)  # no GPU: not news


@contextmanager
def prefect_api(*, console_level: str = "INFO") -> Iterator[str | None]:
    """Yield the API URL flows report to, starting a temporary server if none is set."""
    quiet_defaults(console_level=console_level)
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # ship the last logs before the server goes
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
