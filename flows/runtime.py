"""Where flows run: the Prefect API they report to, and the Dask cluster of their tasks.

:func:`dask_task_runner` builds the task runner from the whole Dask configuration (a
local cluster, an existing scheduler's address, or a batch-system cluster): every flow
that fans out over Dask takes a :class:`~xrdmap.config.DaskConfig` and uses it.

Prefect is imported inside the functions, not at the top: :func:`quiet_defaults` sets
environment variables that Prefect reads once, when it is first imported.

Without ``PREFECT_API_URL``, Prefect would start a temporary server in every process
that runs a task, Dask workers included, and their task runs would land in separate,
throw-away databases. :func:`prefect_api` starts one temporary server instead and
exports its address, so the workers of a local cluster (spawned processes inherit the
environment) report to the same place as the flow.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dask

from xrdmap.config import DaskConfig

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner
    from prefect_dask import DaskTaskRunner

#: dask-jobqueue cluster class per batch system.
JOBQUEUE_CLUSTERS = {
    "slurm": "dask_jobqueue.SLURMCluster",
    "pbs": "dask_jobqueue.PBSCluster",
    "sge": "dask_jobqueue.SGECluster",
    "lsf": "dask_jobqueue.LSFCluster",
}


#: The Dask worker resource of a worker that integrates on a GPU; with
#: ``integration.device: cuda`` only such workers take ingest chunks.
GPU_RESOURCE = {"GPU": 1}


#: Dask's worker profiler: set here for a local cluster (its nanny passes this process's
#: config to each worker), in the job's environment for a batch cluster.
PROFILER_SETTING = "distributed.worker.profile.enabled"
PROFILER_ENVIRON = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"


def dask_task_runner(cfg: DaskConfig, *, gpu_workers: bool = False) -> DaskTaskRunner:
    """A local cluster of single-threaded processes, an existing scheduler, or a
    batch-system cluster (dask-jobqueue, adaptive), as ``cfg`` says; a cluster slow to
    stop after the work does not fail the flow (:mod:`flows.dask_runner`).
    ``gpu_workers``: the workers it starts declare :data:`GPU_RESOURCE` (those of an
    existing scheduler were started with ``--resources GPU=1`` or not)."""
    from flows.dask_runner import StopTolerantDaskTaskRunner as DaskTaskRunner

    # distributed's first import sets its logger to INFO (dask's logging defaults): a
    # cluster's start and stop printed some 35 lines in a command's console (xrdmap fit)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    # Before the process starts, or glibc has read its settings (distributed's nanny
    # docs); the nanny of a local cluster runs in this process and reads this config.
    import distributed  # noqa: F401  (its config defaults, which this extends)

    dask.config.set(
        {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in cfg.worker_environ.items()}
        | {PROFILER_SETTING: cfg.worker_profiler}
    )
    if cfg.jobqueue:
        jq = cfg.jobqueue
        kwargs = {
            "cores": jq.cores,
            "memory": jq.memory,
            "processes": jq.processes,
            "walltime": jq.walltime,
            "queue": jq.queue,
            "account": jq.account,
            "job_extra_directives": jq.job_extra_directives,
            "job_script_prologue": [
                f"export {k}={shlex.quote(v)}" for k, v in cfg.worker_environ.items()
            ]
            + [f"export {PROFILER_ENVIRON}={cfg.worker_profiler}"],
        }
        if gpu_workers:
            kwargs["worker_extra_args"] = ["--resources", _resource_arg(GPU_RESOURCE)]
        return DaskTaskRunner(
            cluster_class=JOBQUEUE_CLUSTERS[jq.system],
            cluster_kwargs={k: v for k, v in kwargs.items() if v is not None},
            adapt_kwargs={"minimum": 0, "maximum": jq.max_jobs * jq.processes},
        )
    kwargs = {
        "threads_per_worker": cfg.threads_per_worker,
        "processes": True,
        "dashboard_address": None,  # no dashboard; its HTTP server (health, metrics) on
        # a free port, not 8787: two commands at once warned "Port 8787 is already in use"
        "scheduler_kwargs": {"dashboard_address": ":0"},
        "silence_logs": logging.WARNING,
        "preload": ["flows.local_worker"],  # a Ctrl-C is the command's to handle
    }
    if cfg.n_workers:
        kwargs["n_workers"] = cfg.n_workers
    if gpu_workers:  # every local worker shares this machine's GPU
        kwargs["resources"] = GPU_RESOURCE
    return DaskTaskRunner(cluster_kwargs=kwargs)


def _resource_arg(resources: dict[str, int]) -> str:
    """``{"GPU": 1}`` as ``dask worker --resources`` takes it: ``GPU=1``."""
    return ",".join(f"{name}={amount}" for name, amount in resources.items())


def require_gpu_workers(cfg: DaskConfig) -> None:
    """Before a flow whose chunks need :data:`GPU_RESOURCE` starts: a local cluster
    needs a usable CUDA device here, an existing scheduler a worker declaring the
    resource (chunks would otherwise wait for one forever); a batch cluster starts its
    workers with it. A :class:`~xrdmap.errors.ConfigError` says what is missing."""
    from xrdmap.errors import ConfigError

    if cfg.jobqueue:
        return
    if cfg.address:
        from distributed import Client

        with Client(cfg.address, timeout=30, set_as_default=False) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
        if not any(set(GPU_RESOURCE) <= set(w.get("resources", {})) for w in workers):
            raise ConfigError(
                f"integration.device: cuda, but no worker of the scheduler at {cfg.address} "
                f"declares a GPU (start them with: dask worker --resources "
                f"{_resource_arg(GPU_RESOURCE)}); or use device auto"
            )
        return
    from xrdmap.integrate_gpu import require_cuda

    require_cuda()


def runs_in_process(cfg: DaskConfig, input_mb: float) -> bool:
    """Whether :func:`sized_task_runner` runs a flow reading ``input_mb`` on threads of
    this process (no scheduler or batch cluster named, less than ``in_process_below_mb``)."""
    return not (cfg.address or cfg.jobqueue or input_mb >= cfg.in_process_below_mb)


def sized_task_runner(
    cfg: DaskConfig, input_mb: float, *, threads: int | None = None, gpu_workers: bool = False
) -> TaskRunner:
    """Prefect's thread pool in the flow's own process (``threads``, default
    ``cfg.n_workers`` or one per core) when ``cfg`` names no scheduler or batch cluster
    and the flow reads less than ``cfg.in_process_below_mb`` (starting a local cluster,
    whose workers each import Prefect, pyFAI or TensorFlow, costs more than such work);
    :func:`dask_task_runner` otherwise."""
    if not runs_in_process(cfg, input_mb):
        return dask_task_runner(cfg, gpu_workers=gpu_workers)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=threads or cfg.n_workers or os.cpu_count())


#: Seconds between a flow run's heartbeats, in the commands as in `make worker`: the
#: zombie automation (deployments/automations.py) marks a run Crashed after three
#: missed. Prefect's default, 180 s, is that whole window: a command running longer
#: (process on a large beamtime, al-rounds waiting for labels) would be marked Crashed
#: between two heartbeats while it runs.
FLOW_HEARTBEAT_S = 60


def quiet_defaults(*, console_level: str = "INFO") -> None:
    """No telemetry lookups (there is no network), no Dask chatter on the terminal,
    Prefect's console at ``console_level`` (the API still receives every log), and flow
    runs' heartbeats every :data:`FLOW_HEARTBEAT_S`."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(FLOW_HEARTBEAT_S))
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", console_level)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read by spawned workers
    os.environ.setdefault("SILX_OPENCL", "0")  # no OpenCL device here: pyFAI uses Cython
    logging.getLogger("distributed").setLevel(logging.WARNING)
    logging.getLogger("silx.opencl.common").setLevel(logging.ERROR)  # no GPU: not news


@contextmanager
def prefect_api(
    *, console_level: str = "INFO", preload: tuple[str, ...] = ()
) -> Iterator[str | None]:
    """Yield the API URL flows report to, starting a temporary server if none is set;
    the modules ``preload`` (what the caller imports next) are imported while that
    server starts (its process boots on another core, this one waits otherwise)."""
    quiet_defaults(console_level=console_level)
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from flows.temporary_server import TemporaryServer

    server = TemporaryServer()
    try:
        for module in preload:
            importlib.import_module(module)
        from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

        # Prefect's own setting for its temporary server's start (default 20 s)
        server.wait_until_ready(get_current_settings().server.ephemeral.startup_timeout_seconds)
    except BaseException:
        server.stop()
        raise
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # ship the last logs before the server goes
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
