"""Preloaded by each worker of a local Dask cluster (:func:`flows.runtime.dask_task_runner`).

The workers are processes of the command's terminal session, so a Ctrl-C reached each
of them as well as the command: every worker printed its KeyboardInterrupt traceback
(72 lines after one Ctrl-C of ``xrdmap process``, before "interrupted"). A worker
ignores it instead; the command, interrupted, closes its cluster and so its workers.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Run by distributed in the worker's main thread as the worker starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
