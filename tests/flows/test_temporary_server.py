"""A command without a Prefect server starts a temporary one; the modules its flows
need are imported while that server boots in its own process, not after."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from flows.runtime import prefect_api
from flows.temporary_server import SCRIPT, TemporaryServer

pytestmark = pytest.mark.slow

WAITS_FOR_THE_SERVER = """
import time, httpx, psutil
from flows.temporary_server import SCRIPT
deadline = time.monotonic() + 60
def booting():
    return [c for c in psutil.Process().children() if SCRIPT in c.cmdline()]
while not booting():
    assert time.monotonic() < deadline, "no server process while importing"
    time.sleep(0.02)
server = booting()[0]
SERVER_PID = server.pid
while not [c for c in server.net_connections("tcp") if c.status == psutil.CONN_LISTEN]:
    time.sleep(0.02)
port = [c for c in server.net_connections("tcp") if c.status == psutil.CONN_LISTEN][0]
try:  # the server takes seconds to boot: it cannot answer yet
    ANSWERED = httpx.get(f"http://127.0.0.1:{port.laddr.port}/api/health", timeout=1)
except httpx.HTTPError:
    ANSWERED = None
"""


def _servers(pid=None):
    """The temporary servers that process ``pid`` (default: this one) launched."""
    children = psutil.Process(pid).children()
    return [c for c in children if SCRIPT in c.cmdline()]


def test_flow_modules_are_imported_while_the_temporary_server_boots(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (tmp_path / "flow_needing_server_boot.py").write_text(WAITS_FOR_THE_SERVER)
    (tmp_path / "flow_that_fails_to_import.py").write_text("raise ImportError('broken flow')")
    monkeypatch.syspath_prepend(str(tmp_path))
    # a user's project with its own flows package: not what the server runs
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("raise SystemExit('user flows')")
    monkeypatch.chdir(tmp_path)

    # a module that fails to import: its error, and no server left behind
    with (
        pytest.raises(ImportError, match="broken flow"),
        prefect_api(preload=("flow_that_fails_to_import",)),
    ):
        pass
    assert not _servers()

    with prefect_api(preload=("flow_needing_server_boot",)) as api:
        module = sys.modules["flow_needing_server_boot"]  # imported before the block
        assert [s.pid for s in _servers()] == [module.SERVER_PID]
        assert module.ANSWERED is None  # imported while the server booted, not after
        assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    assert not _servers()


def test_a_server_holds_its_port_in_its_own_process_group_and_reports_its_failure(
    tmp_path, monkeypatch
):
    unwritable = tmp_path / "missing" / "prefect.db"  # its folder does not exist
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{unwritable}")
    server = TemporaryServer()
    try:
        # not in the command's process group: a Ctrl-C there does not stop it under the
        # flow run, whose crash report then retried against no server (40 s and more)
        assert os.getpgid(server.process.pid) != os.getpgrp()
        with socket.socket() as other, pytest.raises(OSError):  # held while it boots
            other.bind(("127.0.0.1", server.port))
        with pytest.raises(TimeoutError, match="STARTUP_TIMEOUT_SECONDS"):  # still booting
            server.wait_until_ready(timeout_s=0)
        with pytest.raises(ConnectionError, match=rf"port {server.port} exited with code \d"):
            server.wait_until_ready(timeout_s=60)
    finally:
        server.stop()
    assert server.process.returncode is not None


LAUNCHES_A_SERVER = """
import time
from flows.temporary_server import TemporaryServer
print(TemporaryServer().process.pid, flush=True)
time.sleep(60)
"""


def test_a_server_whose_command_is_killed_stops(tmp_path):
    command = subprocess.Popen([sys.executable, "-c", LAUNCHES_A_SERVER], stdout=subprocess.PIPE)
    assert command.stdout is not None
    server = psutil.Process(int(command.stdout.readline()))
    command.kill()  # no finally, no atexit: as the OOM killer or kill -9 would
    command.wait()
    deadline = time.monotonic() + 20
    while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the server outlived its command by 20 s"
        time.sleep(0.1)


INTERRUPTED_FLOW = """
import pathlib, sys, time
from flows.runtime import prefect_api

with prefect_api(console_level="CRITICAL"):
    from prefect import flow

    @flow
    def waits(marker: str) -> None:
        pathlib.Path(marker).write_text("running")
        time.sleep(120)

    waits(sys.argv[1])
"""


def test_ctrl_c_in_a_flow_run_ends_the_command_and_its_server(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    marker = tmp_path / "flow-running"
    command = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_FLOW, str(marker)],
        start_new_session=True,  # its own terminal-like process group
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert command.poll() is None and time.monotonic() < deadline, "the flow never ran"
        time.sleep(0.1)
    server = _servers(command.pid)[0]
    os.killpg(command.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    try:
        command.wait(timeout=20)  # the crash is reported to a server still up, then it stops
        server.wait(timeout=10)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
