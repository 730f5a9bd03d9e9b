"""Preloaded by each worker of a local Dask cluster (:func:`flows.runtime.dask_task_runner`).

The workers are processes of the command's terminal session, so a Ctrl-C reached each
of them as well as the command: every worker printed its KeyboardInterrupt traceback
(72 lines after one Ctrl-C of ``xrdmap process``, before "interrupted"). A worker
ignores it instead; the command, interrupted, closes its cluster and so its workers.
Closing a worker cancels the chunk it is running, and distributed warns of each such
cancellation ("Async instruction for <Task cancelled ...> ended with CancelledError",
one line per chunk); an interrupted command asked for exactly that, so those lines are
left out.
"""

from __future__ import annotations

import logging
import signal
from typing import Any


def _not_a_cancelled_chunk(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (message.startswith("Async instruction for") and "CancelledError" in message)


def dask_setup(worker: Any) -> None:
    """Run by distributed in the worker's main thread as the worker starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker.state_machine").addFilter(_not_a_cancelled_chunk)
