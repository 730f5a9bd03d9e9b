"""The Dask cluster is chosen by configuration alone (local, address, batch system)."""

import importlib

import pytest
from pydantic import ValidationError

from flows.runtime import dask_task_runner
from xrdmap.config import DaskConfig, JobqueueConfig


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
        )
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


def test_local_and_address_runners():
    assert dask_task_runner(DaskConfig(address="tcp://10.0.0.5:8786")).address == (
        "tcp://10.0.0.5:8786"
    )
    local = dask_task_runner(DaskConfig(n_workers=3))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"]


def test_address_and_jobqueue_together_are_refused():
    with pytest.raises(ValidationError, match="either address or jobqueue"):
        DaskConfig(address="tcp://x:1", jobqueue=JobqueueConfig())
