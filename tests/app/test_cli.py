"""The command line as a user meets it: help, wrong arguments, bad config, a real run."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from xrdmap.config import CONF_DIR
from xrdmap.integrate_gpu import cuda_unavailable


def test_help_lists_subcommands(xrdmap):
    out = xrdmap("--help")
    assert out.returncode == 0
    assert "simulate" in out.stdout


def test_wrong_argument_is_a_usage_error(xrdmap):
    out = xrdmap("simulate", "/tmp/x", "--preset", "huge")
    assert out.returncode == 2
    assert "invalid choice: 'huge'" in out.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["al-rounds", "s.zarr", "--rounds", "0"], "argument --rounds: '0': must be above 0"),
        (["al-rounds", "s.zarr", "--n", "0"], "argument --n: '0': must be above 0"),
        (["al-rounds", "s.zarr", "--poll-s", "-1"], "argument --poll-s: '-1': must be above 0"),
        (["query", "s.zarr", "--n", "x"], "argument --n: 'x': not a whole number"),
        (["simulate", "out", "--workers", "0"], "argument --workers: '0': must be above 0"),
        (["process", "bt", "--store", "s", "--chunk-frames", "0"], "--chunk-frames: '0': must"),
        (["draw-labels", "t", "--store", "s", "--out", "l", "--n", "0"], "--n: '0': must be"),
    ],
    ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else "",
)
def test_a_count_of_zero_is_a_usage_error(argv, message, capsys):
    """Zero rounds had ended at once with status 0, zero points per round in a
    traceback; zero workers or frames per task ran with the defaults."""
    from app.cli import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["process", "bt", "--store", "STORE"],
        ["export", "STORE", "--nexus", "out.h5"],
        ["labels", "import", "STORE", "l.csv"],
        ["labels", "export", "STORE", "--out", "l.csv"],
        ["label-ui", "STORE"],
        ["draw-labels", "truth", "--store", "STORE", "--out", "l.csv"],
        ["train", "STORE"],
        ["predict", "STORE"],
        ["evaluate", "STORE"],
        ["fit", "STORE"],
        ["report", "STORE"],
        ["query", "STORE"],
        ["al-rounds", "STORE"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_store_url_reaches_the_command_as_given(argv):
    """An S3 store keeps its '//': a path would make 's3:/bucket/bt.zarr', a local
    folder named 's3:' (which `process` then filled, found by a newcomer's probe)."""
    from app.cli import build_parser

    url = "s3://beamline/bt.zarr"
    args = build_parser().parse_args([url if a == "STORE" else a for a in argv])
    assert args.store == url


def _conf_copy(tmp_path, edit_simulation=None, edit_instrument=None):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    for name, edit in (("simulation.yaml", edit_simulation), ("instrument.yaml", edit_instrument)):
        if edit:
            data = yaml.safe_load((conf / name).read_text())
            edit(data)
            (conf / name).write_text(yaml.safe_dump(data))
    return conf


def test_bad_config_fails_at_once_with_one_line(tmp_path, xrdmap):
    conf = _conf_copy(tmp_path, edit_instrument=lambda d: d.update(energy_kev="ten"))
    out = xrdmap("--conf", conf, "simulate", tmp_path / "out")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "instrument.yaml: energy_kev:" in lines[0]
    assert not (tmp_path / "out").exists()


def test_query_into_a_folder_that_cannot_be_made_fails_before_any_work(tmp_path, xrdmap):
    """It had run the whole query, then failed to write its queue."""
    (tmp_path / "a file").write_text("")
    out = xrdmap("query", tmp_path / "s.zarr", "--out", tmp_path / "a file" / "queue")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"xrdmap query: error: --out {tmp_path / 'a file' / 'queue'}: "
        f"{tmp_path / 'a file'} is a file, not a folder"
    )


def test_query_into_an_existing_folder_fails_before_any_work(tmp_path, xrdmap):
    (tmp_path / "queue").mkdir()
    out = xrdmap("query", tmp_path / "s.zarr", "--out", tmp_path / "queue")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"xrdmap query: error: --out {tmp_path / 'queue'}: already exists; give a new folder"
    )


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_simulate_end_to_end(tmp_path, xrdmap):
    def tiny(d):
        d["presets"]["demo"]["samples"] = [{"name": "S1", "condition": "C01", "grid": [65, 2]}]

    conf = _conf_copy(tmp_path, edit_simulation=tiny)
    out = xrdmap("--conf", conf, "simulate", tmp_path / "out", "--seed", 1, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "Simulated 130 frames of 1 sample in" in out.stdout
    assert len(list((tmp_path / "out/beamtime/S1/frames").glob("*.cbf"))) == 130
    again = xrdmap("--conf", conf, "simulate", tmp_path / "out", "--quiet")
    assert again.returncode == 2 and "use --overwrite" in again.stderr


def test_process_bad_poni_fails_before_any_work(tiny_beamtime, tmp_path, xrdmap):
    bt = tmp_path / "bt"
    shutil.copytree(tiny_beamtime.beamtime_dir, bt)
    poni = bt / "geometry.poni"
    poni.write_text(poni.read_text().replace("Distance: 0.153", "Distance: -0.153"))
    out = xrdmap("process", bt, "--store", tmp_path / "s.zarr")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"{poni}: Distance: must be positive" in lines[0]
    assert not (tmp_path / "s.zarr").exists()


def test_process_bad_config_fails_before_any_work(tiny_beamtime, tmp_path, xrdmap):
    conf = _conf_copy(tmp_path)
    data = yaml.safe_load((conf / "process.yaml").read_text())
    data["integration"]["npt"] = 3
    (conf / "process.yaml").write_text(yaml.safe_dump(data))
    out = xrdmap("--conf", conf, "process", tiny_beamtime.beamtime_dir, "--store", tmp_path / "s")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"xrdmap process: error: {conf / 'process.yaml'}: integration.npt: "
        "Input should be greater than or equal to 10"
    )
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(cuda_unavailable() is None, reason="a CUDA device is present here")
def test_process_on_a_gpu_without_one_fails_before_any_work(tiny_beamtime, tmp_path, xrdmap):
    out = xrdmap(
        "process", tiny_beamtime.beamtime_dir, "--store", tmp_path / "s", "--device", "cuda"
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"xrdmap process: error: integration.device: cuda, but {cuda_unavailable()}; "
        "use auto or cpu"
    )
    assert not (tmp_path / "s").exists()


def test_process_missing_store_argument(xrdmap):
    out = xrdmap("process", "/nonexistent")
    assert out.returncode == 2 and "--store" in out.stderr
    out = xrdmap("process", "/nonexistent", "--store", "/tmp/x.zarr")
    assert out.returncode == 2 and "/nonexistent: not a folder" in out.stderr


def test_the_command_line_loads_prefect_only_when_a_flow_runs():
    """Prefect reads its logging settings when first imported: the command line sets
    them first, so importing it must not import Prefect. Nor the heavy libraries that
    only some commands need (``xrdmap --help`` took 1.2 s with them, 0.4 s without)."""
    heavy = ("prefect", "zarr", "pandas", "pyFAI", "tensorflow", "matplotlib")
    code = f"import sys, app.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_reading_a_beamtime_loads_no_pyfai():
    """`describe`, `init` and the watcher read beamtimes: pyFAI (about 1 s to import) is
    for the commands that integrate (`xrdmap describe` took 1.5-1.7 s with it, 0.6-0.75 s
    without)."""
    code = "import sys, xrdmap.catalog, xrdmap.discovery; print('pyFAI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_query_flow_loads_no_scikit_learn():
    """A relabel queue from a model's confidences (the default per-class strategy) needs
    no scikit-learn: training does (`xrdmap query` on the demo took 7.0-7.6 s with it
    imported, 6.3-6.8 s without)."""
    code = "import sys, flows.active_learning; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_command_flows_send_heartbeats_the_zombie_automation_can_count_on():
    """The automation marks a run Crashed after its window without a heartbeat: a
    command's runs must beat well inside it (Prefect's default, 180 s, is the whole
    window), whatever an outer shell left unset."""
    code = (
        "from flows.runtime import quiet_defaults; quiet_defaults(); "
        "from prefect.settings import get_current_settings; "
        "print(get_current_settings().flows.heartbeat_frequency)"
    )
    env = {k: v for k, v in os.environ.items() if "HEARTBEAT" not in k}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(CONF_DIR.parent / "deployments"))
    try:
        from automations import HEARTBEAT_SILENCE
    finally:
        sys.path.pop(0)
    assert 3 * int(out.stdout.strip()) <= HEARTBEAT_SILENCE.total_seconds()


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_a_sample_with_every_frame_quarantined_fails_and_says_how_to_retry(
    prefect_server, tiny_beamtime, tmp_path, xrdmap
):
    bt = tmp_path / "bt"
    shutil.copytree(tiny_beamtime.beamtime_dir, bt)
    for frame in (bt / "B_marine" / "frames").glob("*.cbf"):
        frame.write_bytes(b"not a CBF")
    store = tmp_path / "s.zarr"
    out = xrdmap("process", bt, "--store", store, "--workers", 1, "--quiet")
    assert out.returncode == 1, out.stderr
    assert "Quarantined 411 frames" in out.stdout
    assert "... and 391 more (the store's reason array)" in out.stdout
    assert f"--store {store} --retry-quarantined" in out.stdout
    assert "error: every frame of sample B_marine is quarantined" in out.stdout


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_a_scheduler_that_does_not_answer_is_named_not_blamed_on_the_disk(tiny_beamtime, tmp_path):
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "process", tiny_beamtime.beamtime_dir, "--store",
         tmp_path / "s.zarr", "--scheduler", "tcp://127.0.0.1:9", "--quiet"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "xrdmap process: error: Timed out trying to connect to tcp://127.0.0.1:9 after 2 s"
    )
