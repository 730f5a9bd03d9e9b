"""The ``fit-phases`` flow: every sample's patterns as a sum of the known phases
(:mod:`xrdmap.phase_fit`), stored per point, then the fraction maps."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import wait

from flows.hooks import record_failure
from flows.runtime import dask_task_runner
from tasks.phase_fit import draw_fraction_maps, fit_sample_task
from xrdmap.config import DaskConfig, PhasesConfig, conf_file, load_phases
from xrdmap.phase_fractions import SampleFit
from xrdmap.store import PHASE_FIT_MAPS, exclusive_writer, maps_dir, open_store, samples


@flow(name="fit-phases", on_failure=[record_failure], on_crashed=[record_failure])
def fit_phases(
    store: str, conf_dir: str | None = None, phases: PhasesConfig | None = None
) -> list[SampleFit]:
    """Fit and publish every sample (holding the store's write lock), then draw the
    fraction maps of each."""
    phases = phases or load_phases(conf_file(conf_dir, "phases.yaml"))
    names = samples(open_store(store))
    with exclusive_writer(store):
        futures = [fit_sample_task.submit(store, s, phases) for s in names]
        wait(futures)
        fits = [f.result() for f in futures]
    out_dir = str(maps_dir(store, PHASE_FIT_MAPS))
    wait([draw_fraction_maps.submit(store, s, out_dir) for s in names])
    get_run_logger().info(
        "%d patterns fitted, %d with an unexplained line",
        sum(f.n_points for f in fits),
        sum(f.n_unexplained for f in fits),
    )
    return fits


def run_fit_phases(store: str, dask: DaskConfig, phases: PhasesConfig) -> list[SampleFit]:
    """Run the flow on the Dask cluster that ``dask`` describes."""
    return fit_phases.with_options(task_runner=dask_task_runner(dask))(store, phases=phases)
