"""State hooks of the flows: where a failure is recorded, and where to plug alerts.

:func:`record_failure` is attached as ``on_failure`` (and ``on_crashed``) to every
flow. It appends one JSON line per failed run to :func:`failure_log_path`
(``$XRDMAP_FAILURE_LOG``, default ``data/failures.jsonl`` under the working folder):
flow, run name and id, parameters, the state's message, and when. To be told of
failures, add a notification here (e-mail, Slack, a ticket), or use a Prefect
automation on the "Failed" / "Crashed" events; this hook never raises.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_FAILURE_LOG = "data/failures.jsonl"


def failure_log_path() -> Path:
    return Path(os.environ.get("XRDMAP_FAILURE_LOG", DEFAULT_FAILURE_LOG))


def record_failure(flow, flow_run, state) -> None:
    """Append a record of a failed or crashed flow run (never raises)."""
    try:
        record = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "flow": flow.name,
            "flow_run": flow_run.name,
            "flow_run_id": str(flow_run.id),
            "state": state.type.value,
            "message": state.message or "",
            "parameters": {k: str(v) for k, v in (flow_run.parameters or {}).items()},
        }
        path = failure_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    except Exception as exc:  # a hook must not hide the run's own failure
        print(f"xrdmap: could not record the failure of {flow_run.name}: {exc}")
