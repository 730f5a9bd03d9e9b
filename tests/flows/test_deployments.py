"""Operations on loopback: a real Prefect server, the deployments of
deployments/prefect.yaml, a process worker, runs triggered through the REST API, the
watcher, and the UI page of a finished run in headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
import zarr

from xrdmap.catalog import pipeline_record

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class RetryingClient(httpx.Client):
    """Retries 503 (the server's SQLite is busy under load), as Prefect's own client does."""

    def request(self, *args, **kwargs):
        for attempt in range(8):
            response = super().request(*args, **kwargs)
            if response.status_code != 503:
                break
            time.sleep(1 + attempt)
        return response


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_beamtime):
    """Server + work pool + deployments + worker, with their own PREFECT_HOME."""
    tmp = tmp_path_factory.mktemp("ops")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        XRDMAP_HOME=str(REPO),
        XRDMAP_BEAMTIMES=str(tmp / "beamtimes"),
        XRDMAP_STORES=str(tmp / "stores"),
        XRDMAP_FAILURE_LOG=str(tmp / "failures.jsonl"),
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
        # the worker asks for scheduled runs every second (default 10 s: a run waited
        # 10 s to start, 70 s of this module's time)
        PREFECT_WORKER_QUERY_SECONDS="1",
    )
    (tmp / "beamtimes").mkdir()
    shutil.copytree(tiny_beamtime.beamtime_dir, tmp / "beamtimes" / "bt1")
    log = (tmp / "server.log").open("w")
    procs = [
        subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    ]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        for cmd in (
            ["work-pool", "create", "xrdmap", "--type", "process"],
            ["--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        ):
            out = subprocess.run(
                [PREFECT, *cmd], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
            )
            assert out.returncode == 0, out.stdout + out.stderr
        for _ in range(2):  # the zombie-run automation; a second run updates it
            out = subprocess.run(
                [sys.executable, "deployments/automations.py"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert out.returncode == 0, out.stdout + out.stderr
        # the watcher's 5-minute schedule stays off: a scheduled run starting by chance
        # in the middle of the module would race the runs the test triggers
        client = RetryingClient(base_url=api)
        watch = client.get("/deployments/name/watch-beamtimes/watch-beamtimes").json()
        assert watch["schedules"], watch
        for schedule in watch["schedules"]:
            response = client.patch(
                f"/deployments/{watch['id']}/schedules/{schedule['id']}", json={"active": False}
            )
            assert response.status_code == 204, response.text
        worker_log = (tmp / "worker.log").open("w")
        procs.append(
            subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", "xrdmap"],
                env=env,
                cwd=REPO,
                stdout=worker_log,
                stderr=worker_log,
            )
        )
        yield {"api": api, "port": port, "tmp": tmp, "client": client}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):  # one slow to stop once cost 30 s of teardown
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                warnings.warn(f"prefect {p.args[1]} ignored SIGTERM for 10 s: killed", stacklevel=1)


def _deployment_id(client, name: str) -> str:
    response = client.get(f"/deployments/name/{name}")
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _trigger(client, name: str, parameters: dict) -> str:
    dep = _deployment_id(client, name)
    response = client.post(f"/deployments/{dep}/create_flow_run", json={"parameters": parameters})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


def _wait(client, run_id: str, tmp: Path, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/flow_runs/{run_id}").json()
        if run["state"]["type"] in TERMINAL:
            break
        time.sleep(1)
    worker_log = (tmp / "worker.log").read_text()[-3000:]
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{worker_log}"
    return run


def _runs_of(client, deployment: str) -> list[dict]:
    dep = _deployment_id(client, deployment)
    body = {"flow_runs": {"deployment_id": {"any_": [dep]}}}
    return client.post("/flow_runs/filter", json=body).json()


def test_deployments_run_backfill_is_safe_twice_and_the_watcher_starts_once(service, two_versions):
    client, tmp = service["client"], service["tmp"]
    names = {d["name"] for d in client.post("/deployments/filter", json={}).json()}
    assert names == {"process-beamtime", "watch-beamtimes", "backfill", "active-learning-round"}
    automations = client.post("/automations/filter", json={}).json()
    assert [a["name"] for a in automations] == ["xrdmap: crash zombie flow runs"]
    stores = tmp / "stores"
    registry = str(tmp / "registry")  # empty: prediction is skipped, the queue cold-starts
    run = _wait(
        client,
        _trigger(
            client,
            "beamtime-pipeline/process-beamtime",
            {
                "beamtime_dir": str(tmp / "beamtimes" / "bt1"),
                "store": str(stores / "bt1.zarr"),
                "registry": registry,
            },
        ),
        tmp,
    )
    record = pipeline_record(str(stores / "bt1.zarr"))
    assert record["stages"] == ["ingest", "fit", "predict", "report", "queue"]
    assert (stores / "bt1.zarr-maps" / "phase-fit").is_dir()  # fraction maps, no model needed
    assert (stores / "bt1.zarr-report" / "report.png").is_file()
    assert (stores / "bt1.zarr-queue" / "cold-start" / "queue.csv").is_file()
    service["pipeline_run"] = run["id"]

    for _ in range(2):  # a backfill is safe to run twice
        _wait(
            client,
            _trigger(
                client,
                "backfill/backfill",
                {"beamtimes": ["bt1"], "stages": ["ingest"], "registry": registry},
            ),
            tmp,
        )
    assert pipeline_record(str(stores / "bt1.zarr"))["stages"] == ["ingest"]

    shutil.copytree(tmp / "beamtimes" / "bt1", tmp / "beamtimes" / "bt2")
    before = len(_runs_of(client, "beamtime-pipeline/process-beamtime"))
    watch = {"registry": registry, "stages": ["ingest"]}  # bt1 ran every stage above
    for _ in range(2):  # bt1 is done; bt2 is new: exactly one run for it (no model yet)
        _wait(client, _trigger(client, "watch-beamtimes/watch-beamtimes", watch), tmp)
    runs = _runs_of(client, "beamtime-pipeline/process-beamtime")
    new = [r for r in runs if r["parameters"]["store"].endswith("bt2.zarr")]
    assert len(runs) == before + 1 and len(new) == 1
    assert new[0]["parameters"]["stages"] == ["ingest"]
    _wait(client, new[0]["id"], tmp)
    assert pipeline_record(str(stores / "bt2.zarr"))["stages"] == ["ingest"]

    # a new model version (trained on the same tiny beamtime by the core, as `xrdmap
    # train` does: tests/models covers the command), then a backfill of the prediction
    shutil.copytree(Path(two_versions[0]) / two_versions[1], Path(registry) / "v0001")
    _wait(
        client,
        _trigger(
            client,
            "backfill/backfill",
            {"beamtimes": ["bt1"], "stages": ["predict"], "registry": registry},
        ),
        tmp,
    )
    assert pipeline_record(str(stores / "bt1.zarr"))["model_version"] == "v0001"
    root = zarr.open_group(str(stores / "bt1.zarr"), mode="r")
    assert root["samples/A_urban/confidence"].attrs["latest"] == "v0001"
    assert (stores / "bt1.zarr-maps" / "v0001" / "overview.png").is_file()
    worker_log = (tmp / "worker.log").read_text()  # the runs' warnings land here
    assert "prediction and maps skipped" in worker_log  # (the first run: no model yet)
    assert "pyOpenCl" not in worker_log  # no advice to install what is never used


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_the_ui_shows_a_finished_run_with_its_artifacts(service, tmp_path):
    from playwright.sync_api import sync_playwright

    run_id = service.get("pipeline_run")
    if run_id is None:
        pytest.skip("needs the pipeline run of the test above")
    shot = tmp_path / "flow-run.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{service['port']}/runs/flow-run/{run_id}")
        page.wait_for_selector("text=Completed", timeout=60_000)
        page.get_by_text("Artifacts", exact=True).click()
        page.wait_for_selector("text=pipeline-bt1-zarr", timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000
    shutil.copy(shot, service["tmp"] / "flow-run.png")
