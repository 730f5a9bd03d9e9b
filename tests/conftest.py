"""Shared fixtures and helpers of every layer's tests: the reference geometry, a frame
simulator, small beamtimes written to disk by the real simulator, their processed
store, Prefect's test harness, the command line as a user runs it, and a quick
training configuration."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from xrdmap.config import (
    CONF_DIR,
    PresetConfig,
    SampleSpec,
    load_instrument,
    load_phases,
    load_process,
    load_simulation,
)
from xrdmap.integrate import BatchIntegrator
from xrdmap.phases import all_reference_lines
from xrdmap.simulate import geometry
from xrdmap.simulate.beamtime import LINES_TTH_RANGE, simulate_beamtime
from xrdmap.simulate.frames import FrameSimulator, PointState

#: The longest module (a Prefect server, a worker and seven flow runs, over 2 min):
#: collected first, so that with ``pytest -n 2 --dist loadfile`` (``make test``) it
#: runs beside the others instead of alone at the end.
FIRST_MODULES = ("test_deployments.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """That module first, then the modules with a test marked slow, then the quick ones,
    which fill the end of a pytest-xdist run evenly. ``make test`` passes
    ``--no-loadscope-reorder``: pytest-xdist would otherwise order the modules by their
    number of tests, and the longest, with two, started 5 min 45 s into an 8 min 9 s
    run (session 18)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path.name not in FIRST_MODULES, item.path not in slow))


#: Small samples spanning resin -> rust -> steel (rows cover the whole depth).
TINY_SAMPLES = (
    SampleSpec(name="A_urban", condition="C03", grid=(80, 4)),
    SampleSpec(name="B_marine", condition="C13", grid=(137, 3)),
)


@pytest.fixture(scope="session")
def instrument():
    return load_instrument()


@pytest.fixture(scope="session")
def phases():
    return load_phases()


@pytest.fixture(scope="session")
def sim_config():
    return load_simulation()


@pytest.fixture(scope="session")
def tiny_samples():
    """The samples of the tiny preset (names, conditions, grids)."""
    return TINY_SAMPLES


@pytest.fixture(scope="session")
def tiny_sim_config(sim_config):
    presets = {"tiny": PresetConfig(samples=list(TINY_SAMPLES))}
    return sim_config.model_copy(update={"presets": presets})


@pytest.fixture(scope="session")
def integrator(instrument):
    return geometry.build_integrator(instrument)


@pytest.fixture(scope="session")
def reference_lines(phases, instrument):
    return all_reference_lines(
        phases, wavelength_a=instrument.wavelength_a, tth_range_deg=LINES_TTH_RANGE
    )


@pytest.fixture(scope="session")
def frame_simulator(integrator, instrument, phases, sim_config, reference_lines):
    defects = geometry.detector_defects(sim_config.detector_defects, integrator.detector.shape)
    return FrameSimulator(integrator, instrument, phases, sim_config, reference_lines, defects)


@pytest.fixture(scope="session")
def detector_mask(frame_simulator):
    return frame_simulator.defects.mask(frame_simulator.maps.shape)


@pytest.fixture(scope="session")
def point_of(frame_simulator, reference_lines):
    """Build a PointState from {phase: fraction}, with resin filling the rest."""

    def make(fractions: dict[str, float], spots: dict[str, int] | None = None) -> PointState:
        names = frame_simulator.phase_names
        f = np.zeros(len(names) + 1)
        for name, value in fractions.items():
            f[names.index(name)] = value
        f[-1] = 1 - f[:-1].sum()
        fe_ref = reference_lines["ferrite"].fe_per_a3
        fe = sum(f[i] * reference_lines[n].fe_per_a3 / fe_ref for i, n in enumerate(names))
        s = np.array([(spots or {}).get(n, 0) for n in frame_simulator.coarse_names])
        return PointState(fractions=f, spots=s, fe_signal=fe, texture_r=np.ones(len(names)))

    return make


@pytest.fixture(scope="session")
def integrate(integrator, detector_mask, instrument):
    """pyFAI integrate1d as the pipeline will use it: mask, overflow, corrections."""

    def run(frame: np.ndarray, npt: int = 300):
        bad = detector_mask.astype(bool) | (frame < 0) | (frame >= instrument.count_cutoff)
        return integrator.integrate1d(
            frame,
            npt,
            unit="2th_deg",
            mask=bad,
            correctSolidAngle=True,
            polarization_factor=instrument.polarization_factor,
            error_model="poisson",
        )

    return run


@pytest.fixture(scope="session")
def integration_frames(frame_simulator, point_of):
    """40 simulated frames of four kinds, with an overflowing pixel outside the mask
    (frame 3) and a flagged and an overflowing one side by side (frame 7)."""
    rng = np.random.default_rng(0)
    points = [
        point_of({"goethite": 0.6, "lepidocrocite": 0.3}),
        point_of({}),
        point_of({"ferrite": 0.9, "cementite": 0.1}, {"ferrite": 3}),
        point_of({"magnetite": 0.5, "goethite": 0.4}),
    ] * 10
    out = np.stack([frame_simulator.render(p, rng) for p in points])
    cutoff = frame_simulator.instrument.count_cutoff
    out[3, 100, 200] = cutoff  # overflow outside the mask
    out[7, 50, 60] = -1  # a flagged pixel outside the mask
    out[7, 51, 60] = cutoff
    return out


@pytest.fixture(scope="session")
def batch_integrator(integrator, detector_mask, instrument):
    """The CPU integrator of the reference geometry and mask, with the shipped settings."""
    cfg = load_process().integration
    return BatchIntegrator(integrator, detector_mask, cfg, count_cutoff=instrument.count_cutoff)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]):
    """``build(folder)``'s result, built once per test run in a folder the pytest-xdist
    workers share (each worker's session fixtures are otherwise its own): the first
    worker to ask builds it under a file lock, the others wait and read its result.
    Only for what the tests read and never change."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder, result = base / name, base / f"{name}.pickle"
    with FileLock(base / f"{name}.lock"):
        if not result.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result.write_bytes(pickle.dumps(build(folder)))
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def tiny_beamtime(tmp_path_factory, tiny_sim_config):
    return built_once(
        tmp_path_factory,
        "tiny",
        lambda out: simulate_beamtime(
            out / "bt", preset="tiny", seed=7, layout="cbf", workers=2, progress=False,
            sim=tiny_sim_config,
        ),
    )  # fmt: skip


@pytest.fixture(scope="session")
def prefect_server():
    """Prefect's test harness, its address exported so Dask workers report to it."""
    from flows.runtime import quiet_defaults

    quiet_defaults(console_level="WARNING")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield PREFECT_API_URL.value()
        os.environ.pop("PREFECT_API_URL")


def process_with_core(description, store, cfg=None, *, chunks=None):
    """Plan ``description`` (a beamtime folder or a manifest) into ``store`` and ingest
    its chunks left to do (the first ``chunks`` of them) with the core functions, as the
    Dask workers do, without Prefect; returns the plan."""
    from xrdmap.ingest import process_chunk
    from xrdmap.plan import plan_beamtime

    cfg = cfg or load_process()
    plan = plan_beamtime(str(description), str(store), cfg)
    for chunk in plan.todo[:chunks]:
        process_chunk(str(store), chunk, cfg)
    return plan


@contextmanager
def holding_write_lock(store: str, *, lease_s: float | None = None) -> Iterator[subprocess.Popen]:
    """Another process holding ``store``'s write lock (on S3, a lease of ``lease_s``)
    inside the block; killed (``SIGKILL``) when the block ends."""
    code = (
        "import sys, time\n"
        "from xrdmap import locks\n"
        + (f"locks.LEASE_S = {lease_s}\n" if lease_s else "")
        + "with locks.store_lock(sys.argv[1], locks.WRITE):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, store], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(scope="session")
def lock_holder():
    """``with lock_holder(store, lease_s=None) as process``: see :func:`holding_write_lock`."""
    return holding_write_lock


@pytest.fixture(scope="session")
def process_core():
    """``process_core(description, store, cfg=None, chunks=None)`` -> Plan."""
    return process_with_core


@pytest.fixture(scope="session")
def tiny_store(tiny_beamtime, tmp_path_factory):
    """The tiny beamtime processed by the core functions (no Prefect needed)."""
    store = str(tmp_path_factory.mktemp("train") / "tiny.zarr")
    process_with_core(tiny_beamtime.beamtime_dir, store)
    return store


@pytest.fixture(scope="session")
def fitted_store(tiny_store, tmp_path_factory):
    """A copy of the tiny store with the phase fit of both samples (no predictions)."""
    import shutil

    from xrdmap.phase_fractions import fit_sample

    store = tmp_path_factory.mktemp("fitted") / "fitted.zarr"
    shutil.copytree(tiny_store, store)
    for sample in ("A_urban", "B_marine"):
        fit_sample(str(store), sample, load_phases())
    return str(store)


@pytest.fixture
def fresh_store(tiny_store, tmp_path):
    """A copy of the tiny store as `xrdmap process` leaves it: no predictions, no labels
    (other tests predict into the shared tiny store)."""
    import shutil

    import zarr

    from xrdmap.store import consolidate

    path = tmp_path / "copy.zarr"
    shutil.copytree(tiny_store, path)
    root = zarr.open_group(path, mode="r+", use_consolidated=False)
    for sample in root.attrs["xrdmap"]["samples"]:
        if "confidence" in root[f"samples/{sample}"]:
            del root[f"samples/{sample}"]["confidence"]
    for name in ("labels",):
        if name in root:
            del root[name]
    consolidate(str(path))
    return path


#: A line of Prefect's console log ("12:00:00.000 | INFO    | prefect - ...").
PREFECT_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| \w+ +\| .*$", re.MULTILINE)


def run_xrdmap(*args, cwd=None) -> subprocess.CompletedProcess:
    """``xrdmap ARGS...`` in a new process, as a user runs it: without the console level
    this process gave Prefect, so that every command here shows that it speaks for
    itself (no Prefect log line on the terminal without ``--verbose``)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    logged = PREFECT_LOG_LINE.findall(result.stdout + result.stderr)
    assert "--verbose" in args or not logged, f"xrdmap {args[0]} logged: {logged[:3]}"
    return result


@pytest.fixture(scope="session")
def xrdmap(prefect_server):
    """The command line: ``xrdmap("process", ...)`` -> CompletedProcess. Commands report
    to the session's Prefect server (each would start its own otherwise, ~4 s; the
    SIGKILL test runs commands that do)."""
    return run_xrdmap


#: Training settings that pre-train briefly (test speed).
QUICK_TRAIN = {
    "pretrain_patterns": 400,
    "pretrain_backgrounds": 100,
    "pretrain_epochs": 2,
    "rehearsal_patterns": 100,
    "max_epochs": 30,
    "augment_copies": 2,
    "ensemble_members": 1,  # tests/models/test_models.py trains a 3-member ensemble
}


def quick_train_config(registry: Path, **changes):
    """conf/train.yaml with :data:`QUICK_TRAIN` and ``changes``, writing into ``registry``."""
    from xrdmap.config import load_train

    return load_train().model_copy(update={"registry_dir": str(registry), **QUICK_TRAIN, **changes})


@pytest.fixture(scope="session")
def quick_train_settings():
    """``quick_train_settings(registry, **changes)`` -> a quickly training TrainConfig."""
    return quick_train_config


def write_quick_train_conf(tmp_path: Path, **changes) -> Path:
    """A copy of conf/ whose train.yaml pre-trains briefly (test speed), with
    ``changes`` to train.yaml."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    train = yaml.safe_load((conf / "train.yaml").read_text())
    train.update(QUICK_TRAIN, **changes)
    (conf / "train.yaml").write_text(yaml.safe_dump(train))
    return conf


@pytest.fixture(scope="session")
def quick_train_conf():
    """``quick_train_conf(folder, **changes)``: a conf/ copy in ``folder`` that trains
    quickly."""
    return write_quick_train_conf


@pytest.fixture(scope="session")
def two_versions(request, tiny_beamtime, tmp_path_factory, quick_train_settings):
    """Two model versions (seeds 0 and 1) trained quickly on the tiny store:
    (registry, v1, v2, labels CSV). Built once per run (:func:`built_once`)."""

    def train(folder: Path) -> tuple[str, str, str, Path]:
        from models.train import train_version
        from xrdmap.simulate.expert import draw_expert_labels

        store = request.getfixturevalue("tiny_store")
        registry = folder / "registry"
        labels = draw_expert_labels(tiny_beamtime.truth_dir, ["A_urban", "B_marine"], 60, seed=0)
        labels_csv = folder / "labels.csv"
        labels.to_csv(labels_csv, index=False)
        cfg = quick_train_settings(registry, patience=5)
        v1, card = train_version(store, labels, cfg, load_phases())
        assert card["pretraining"]["synthetic_patterns"] == 400
        v2, _ = train_version(store, labels, cfg.model_copy(update={"seed": 1}), load_phases())
        return str(registry), v1, v2, labels_csv

    return built_once(tmp_path_factory, "two-versions", train)


@pytest.fixture(scope="module")
def dask_scheduler():
    """A real `dask scheduler` on loopback with two `dask worker` processes, as on a
    facility cluster: ``.address`` and a connected ``.client``. One per module: idle,
    the five processes cost about 8 s of CPU a minute (heartbeats, Dask's event-loop
    ticks and system monitor), and a session's cluster idled for minutes."""
    import socket
    from types import SimpleNamespace

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = str(Path(sys.executable).with_name("dask"))
    scheduler = [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    # --no-dashboard alone still serves one on :8787 (distributed's CLI): a free
    # loopback port keeps 8787 for the flows' own clusters.
    quiet = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    procs = [subprocess.Popen([*scheduler, *quiet], stderr=subprocess.DEVNULL)]
    try:
        for name in ("w1", "w2"):
            worker = [dask_cli, "worker", address, "--nthreads", "1", "--nworkers", "1"]
            procs.append(
                subprocess.Popen([*worker, "--name", name, *quiet], stderr=subprocess.DEVNULL)
            )
        # Not the default client: flows that start their own local cluster (and the
        # workers' environment) must not be routed to this scheduler.
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            yield SimpleNamespace(address=address, client=client)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


@pytest.fixture
def s3_server(monkeypatch):
    """An S3-compatible server on loopback (moto in server mode) with bucket
    ``beamline``; yields its URL."""
    import socket

    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    s3fs.S3FileSystem.clear_instance_cache()  # none that knows an earlier server
    # S3 evaluates a conditional PUT (If-None-Match, If-Match) and the write as one
    # step; moto's threaded server checks, then writes: two of six simultaneous
    # If-None-Match PUTs once both succeeded. Its PUTs are made one at a time, as S3's.
    from moto.s3.responses import S3Response

    one_at_a_time, put_object = threading.Lock(), S3Response.put_object

    def atomic_put_object(self):
        with one_at_a_time:
            return put_object(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put_object)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # Dask workers are spawned: they inherit these
    boto3.client("s3").create_bucket(Bucket="beamline")
    yield "s3://beamline"
    server.stop()
