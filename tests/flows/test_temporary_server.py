"""A command without a Prefect server starts a temporary one; the modules its flows
need are imported while that server boots in its own process, not after."""

import sys

import psutil
import pytest

from flows.runtime import prefect_api

pytestmark = pytest.mark.slow

WAITS_FOR_THE_SERVER = """
import time, httpx, psutil
deadline = time.monotonic() + 60
def booting():
    return [c for c in psutil.Process().children() if "uvicorn" in " ".join(c.cmdline())]
while not booting():
    assert time.monotonic() < deadline, "no server process while importing"
    time.sleep(0.02)
server = booting()[0]
SERVER_PID = server.pid
port = server.cmdline()[server.cmdline().index("--port") + 1]
try:  # the server takes seconds to boot: it cannot answer yet
    ANSWERED = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code
except httpx.HTTPError:
    ANSWERED = None
"""


def _servers():
    return [c for c in psutil.Process().children() if "uvicorn" in " ".join(c.cmdline())]


def test_flow_modules_are_imported_while_the_temporary_server_boots(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (tmp_path / "flow_needing_server_boot.py").write_text(WAITS_FOR_THE_SERVER)
    (tmp_path / "flow_that_fails_to_import.py").write_text("raise ImportError('broken flow')")
    monkeypatch.syspath_prepend(str(tmp_path))

    # a module that fails to import: its error, and no server left behind
    with (
        pytest.raises(ImportError, match="broken flow"),
        prefect_api(preload=("flow_that_fails_to_import",)),
    ):
        pass
    assert not _servers()

    import httpx

    with prefect_api(preload=("flow_needing_server_boot",)) as api:
        module = sys.modules["flow_needing_server_boot"]  # imported before the block
        assert [s.pid for s in _servers()] == [module.SERVER_PID]
        assert module.ANSWERED is None  # imported while the server booted, not after
        assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    assert not _servers()
