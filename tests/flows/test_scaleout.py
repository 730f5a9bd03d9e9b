"""The Dask cluster is chosen by configuration alone (local, address, batch system)."""

import importlib

import pytest
from pydantic import ValidationError

from flows.runtime import dask_task_runner
from xrdmap.config import DaskConfig, JobqueueConfig
from xrdmap.errors import ConfigError
from xrdmap.integrate_gpu import cuda_unavailable


def test_jobqueue_config_gives_a_slurm_cluster_with_the_facility_settings():
    cfg = DaskConfig(
        jobqueue=JobqueueConfig(
            system="slurm",
            queue="short",
            account="bl01",
            cores=4,
            memory="16GB",
            processes=4,
            walltime="01:00:00",
            max_jobs=3,
        ),
        worker_environ={"MALLOC_TRIM_THRESHOLD_": "268435456"},
    )
    runner = dask_task_runner(cfg)
    assert runner.cluster_class == "dask_jobqueue.SLURMCluster"
    assert runner.adapt_kwargs == {"minimum": 0, "maximum": 12}
    module, name = runner.cluster_class.rsplit(".", 1)
    cluster_class = getattr(importlib.import_module(module), name)
    with cluster_class(
        **runner.cluster_kwargs, scheduler_options={"dashboard_address": None}
    ) as cluster:
        script = cluster.job_script()  # what sbatch would get; nothing is submitted
    assert "#SBATCH -p short" in script and "#SBATCH -A bl01" in script
    assert "#SBATCH -t 01:00:00" in script and "--nworkers 4" in script
    assert "export MALLOC_TRIM_THRESHOLD_=268435456" in script  # before the workers start
    assert "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False" in script


def test_gpu_workers_declare_the_gpu_resource():
    """integration.device cuda: the workers a runner starts declare a GPU, those of a
    batch cluster through their command line."""
    from flows.runtime import GPU_RESOURCE

    local = dask_task_runner(DaskConfig(n_workers=2), gpu_workers=True)
    assert local.cluster_kwargs["resources"] == GPU_RESOURCE == {"GPU": 1}
    assert "resources" not in dask_task_runner(DaskConfig(n_workers=2)).cluster_kwargs
    batch = dask_task_runner(DaskConfig(jobqueue=JobqueueConfig(system="slurm")), gpu_workers=True)
    from dask_jobqueue import SLURMCluster

    with SLURMCluster(
        **batch.cluster_kwargs, scheduler_options={"dashboard_address": None}
    ) as cluster:
        assert "--resources GPU=1" in cluster.job_script()


@pytest.mark.skipif(cuda_unavailable() is None, reason="a CUDA device is present here")
def test_cuda_without_a_device_stops_before_any_cluster_starts():
    from flows.process_beamtime import ingest_task_runner
    from xrdmap.config import load_process

    cfg = load_process()
    cfg = cfg.model_copy(
        update={"integration": cfg.integration.model_copy(update={"device": "cuda"})}
    )
    with pytest.raises(ConfigError, match=r"^integration\.device: cuda, but .*; use auto or cpu$"):
        ingest_task_runner(cfg, "never-read")


def test_local_and_address_runners():
    assert dask_task_runner(DaskConfig(address="tcp://10.0.0.5:8786")).address == (
        "tcp://10.0.0.5:8786"
    )
    local = dask_task_runner(DaskConfig(n_workers=3))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"]


def test_small_work_runs_in_process_unless_a_cluster_is_named():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runtime import sized_task_runner

    local = DaskConfig(n_workers=2)  # in_process_below_mb: 512 by default
    assert isinstance(sized_task_runner(local, 137.0), ThreadPoolTaskRunner)
    assert isinstance(sized_task_runner(local, 600.0), DaskTaskRunner)
    never = DaskConfig(in_process_below_mb=0)
    assert isinstance(sized_task_runner(never, 0.1), DaskTaskRunner)
    named = DaskConfig(address="tcp://10.0.0.5:8786")
    assert sized_task_runner(named, 0.1).address == "tcp://10.0.0.5:8786"
    batch = DaskConfig(jobqueue=JobqueueConfig(system="slurm"))
    assert isinstance(sized_task_runner(batch, 0.1), DaskTaskRunner)


def test_a_small_beamtime_ingests_on_one_thread_in_process(tiny_beamtime):
    """The tiny beamtime's frames (278 MB of int32 counts) are below
    ``in_process_below_mb``: one thread in the flow's process; above it, or with a
    scheduler named, Dask."""
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.process_beamtime import ingest_task_runner
    from xrdmap.config import load_process
    from xrdmap.plan import inspect_beamtime

    cfg = load_process()
    bt = str(tiny_beamtime.beamtime_dir)
    assert inspect_beamtime(bt, cfg).beamtime.frames_mb((195, 487)) == 731 * 195 * 487 * 4 / 1e6

    runner = ingest_task_runner(cfg, bt)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 1

    def with_dask(**changes):
        return cfg.model_copy(update={"dask": cfg.dask.model_copy(update=changes)})

    assert isinstance(ingest_task_runner(with_dask(in_process_below_mb=50), bt), DaskTaskRunner)
    named = ingest_task_runner(with_dask(address="tcp://10.0.0.5:8786"), bt)
    assert isinstance(named, DaskTaskRunner) and named.address == "tcp://10.0.0.5:8786"


def test_address_and_jobqueue_together_are_refused():
    with pytest.raises(ValidationError, match="either address or jobqueue"):
        DaskConfig(address="tcp://x:1", jobqueue=JobqueueConfig())


@pytest.mark.slow
def test_a_cluster_slow_to_stop_does_not_fail_a_finished_flow(prefect_server, monkeypatch):
    """distributed's nanny, hurried as on a loaded machine (no time to stop), times out
    while the runner exits: the flow's result stands; a flow's own error still fails it;
    no cluster is left half-closed for the process's exit to wait on."""
    import distributed.nanny
    from distributed.core import Status
    from distributed.deploy.spec import SpecCluster
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    close = distributed.nanny.Nanny.close

    async def hurried(self, timeout=5, reason="nanny-close"):
        return await close(self, timeout=0, reason=reason)

    monkeypatch.setattr(distributed.nanny.Nanny, "close", hurried)

    @task
    def square(x: int) -> int:
        return x * x

    def run(runner, fail=False):
        @flow(task_runner=runner)
        def squares() -> int:
            total = sum(f.result() for f in [square.submit(k) for k in range(4)])
            if fail:
                raise ValueError("the flow's own error")
            return total

        return squares()

    def left_closing() -> set:  # distributed's exit hook waits 10 s on each
        return {c for c in SpecCluster._instances if c.status != Status.closed}

    before = left_closing()
    config = DaskConfig(n_workers=1)
    with pytest.raises(TimeoutError):  # what Prefect's own runner does
        run(DaskTaskRunner(cluster_kwargs=dask_task_runner(config).cluster_kwargs))
    for cluster in left_closing() - before:  # Prefect's runner leaves its cluster so
        cluster.status = Status.closed
    assert run(dask_task_runner(config)) == 14
    with pytest.raises(ValueError, match="the flow's own error"):
        run(dask_task_runner(config), fail=True)
    assert not left_closing() - before  # the process ends without waiting on them


@pytest.mark.slow
def test_local_workers_start_with_the_configured_environment(prefect_server, monkeypatch):
    """glibc reads its allocator thresholds when a process starts: the local cluster's
    workers must have them from birth, over Dask's own MALLOC_TRIM_THRESHOLD_ (64 KiB).
    Dask's profiler does not run in them (``worker_profiler`` false)."""
    from prefect import flow, task

    # A variable already in this process's environment wins over the configuration
    # (distributed's precedence), and an earlier cluster's nanny leaves its own here.
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)

    @task
    def allocator_settings() -> tuple[str | None, str | None, bool]:
        import os

        from distributed import get_worker

        return (
            os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            "profile" in get_worker().periodic_callbacks,
        )

    config = DaskConfig(
        n_workers=1,
        worker_environ={"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "2097152"},
    )

    @flow(task_runner=dask_task_runner(config))
    def settings() -> tuple[str | None, str | None, bool]:
        return allocator_settings.submit().result()

    assert settings() == ("1048576", "2097152", False)


def test_a_local_cluster_is_quiet_beside_another(caplog):
    """Two commands at once: a local cluster's HTTP server (health, metrics; no
    dashboard) takes a free port, not 8787, which another command's may hold ("Port
    8787 is already in use"), and distributed's INFO lines stay off the console."""
    import contextlib
    import logging
    import socket
    import warnings

    from distributed import LocalCluster

    runner = dask_task_runner(DaskConfig(n_workers=1))
    with socket.socket() as other, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(OSError):  # taken already
            other.bind(("127.0.0.1", 8787))  # as another command's cluster did
        with caplog.at_level(logging.INFO), LocalCluster(**runner.cluster_kwargs) as cluster:
            assert cluster.scheduler.http_server.port != 8787
    assert not [w for w in caught if "8787" in str(w.message)]
    chatter = [r for r in caplog.records if r.name.startswith("distributed")]
    assert not [r for r in chatter if r.levelno < logging.WARNING], chatter[:3]


def test_a_local_cluster_announces_no_dashboard():
    """prefect-dask logs "The Dask dashboard is available at <link>" when a cluster
    starts; a local cluster has no dashboard (that link's page does not exist), so the
    runner does not say so, and says the rest."""
    import logging

    runner = dask_task_runner(DaskConfig(n_workers=1)).duplicate()
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    level = runner.logger.level
    runner.logger.addHandler(handler)
    runner.logger.setLevel(logging.INFO)
    try:
        with runner:
            assert runner.client.dashboard_link  # what prefect-dask would have named
    finally:
        runner.logger.removeHandler(handler)
        runner.logger.setLevel(level)
    assert any(line.startswith("Creating a new Dask cluster") for line in said), said
    assert not [line for line in said if "dashboard" in line]


def test_a_local_worker_leaves_ctrl_c_to_its_command():
    """The terminal's Ctrl-C reaches a local cluster's workers too: they ignore it (the
    interrupted command closes the cluster), instead of each printing a traceback."""
    import os
    import signal
    import time

    from distributed import Client, LocalCluster

    kwargs = dask_task_runner(DaskConfig(n_workers=1)).cluster_kwargs
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        (pid,) = client.run(os.getpid).values()
        os.kill(pid, signal.SIGINT)
        time.sleep(1)
        assert list(client.run(os.getpid).values()) == [pid]  # the same process, alive


def test_closing_a_local_cluster_mid_chunk_says_nothing(capfd):
    """An interrupted command closes its cluster while chunks run; distributed warned
    of each cancelled one ("Async instruction ... ended with CancelledError"), lines
    after Ctrl-C that tell the user nothing. The workers leave those out."""
    import time

    from distributed import Client, LocalCluster

    kwargs = dask_task_runner(DaskConfig(n_workers=1)).cluster_kwargs
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        chunk = client.submit(time.sleep, 2)
        while not any(client.processing().values()):
            time.sleep(0.05)
        time.sleep(0.5)  # the worker is running it
    assert chunk.status != "finished"
    err = capfd.readouterr().err
    assert "CancelledError" not in err, err
