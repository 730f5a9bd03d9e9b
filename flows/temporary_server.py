"""A temporary Prefect API server for one command, launched before Prefect is imported.

Prefect's own ``SubprocessASGIServer`` lives in ``prefect.server.api.server``, a module
that takes 1.5-2 s to import (FastAPI, SQLAlchemy, the API's routes) in the command
that only wants to launch it; the server process then imports it again. Here the
command binds a port, hands the listening socket to a child process and goes on with
its own imports while the child boots Prefect's app (``create_app(ephemeral=True)``,
what Prefect's temporary server serves) on that socket. The port is the system's pick
and is held from the start: no other process can take it between the choice and the
server's start.

Run as ``python -P .../flows/temporary_server.py FD PID``: serve the API on the
listening socket ``FD`` until terminated or until the process ``PID`` (the command) is
gone. It is run as a file, and it imports only the standard library, uvicorn and
Prefect: it needs no installed ``flows`` package, and the working directory (a user's
project may have a ``flows`` package of its own) is not on its path. ``-P`` keeps this
file's folder off it too, so that our modules there (``predict``, ``hooks``, ...)
cannot stand in for others of the same name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

#: This file, run by the server's process.
SCRIPT = str(Path(__file__).resolve())


class TemporaryServer:
    """A Prefect API server process serving on a port this process picked."""

    def __init__(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(2048)
            self.port: int = listener.getsockname()[1]
            fd = listener.fileno()
            self.launched = time.monotonic()
            self.process = subprocess.Popen(
                [sys.executable, "-P", SCRIPT, str(fd), str(os.getpid())],
                pass_fds=(fd,),
                # its own process group: a Ctrl-C in the terminal interrupts the command,
                # which reports the flow run as crashed to this server, then stops it
                process_group=0,
                stdin=subprocess.DEVNULL,  # never the terminal's: not its foreground group
            )
        finally:
            listener.close()  # the child holds the port; if it dies, clients are refused

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_until_ready(self, timeout_s: float) -> None:
        """Return once the API answers its health check; raise ConnectionError if the
        server exits first, TimeoutError if it has not answered ``timeout_s`` after its
        launch."""
        import httpx

        deadline = self.launched + timeout_s
        while True:
            if self.process.poll() is not None:
                raise ConnectionError(
                    f"temporary Prefect server on port {self.port} exited with code "
                    f"{self.process.returncode} before it answered (its error is above)"
                )
            try:  # a request waits in the socket's queue until the app has started
                response = httpx.get(f"{self.api_url}/health", timeout=0.5)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"temporary Prefect server on port {self.port} did not answer within "
                    f"{timeout_s:g} s of its launch "
                    "(Prefect's PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the server; kill it if it has not exited after 5 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _stop_with(parent: int) -> None:
    """Terminate this process once ``parent`` is gone (killed, say, where no ``finally``
    runs): a temporary server is its command's, not left holding memory and a port."""
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def serve(fd: int, parent: int) -> None:
    """Serve Prefect's temporary-server app on the listening socket ``fd`` while the
    process ``parent`` that launched it lives."""
    threading.Thread(target=_stop_with, args=(parent,), daemon=True).start()
    import uvicorn
    from prefect.server.api.server import create_app

    app = create_app(ephemeral=True, final=True)
    config = uvicorn.Config(app, log_level="error", lifespan="on")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
