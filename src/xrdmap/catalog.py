"""Beamtimes under a root folder, the stores they go to, and which are done.

A beamline writes one folder per beamtime under a root (``ROOT/<name>/beamtime.json``)
and drops ``BEAMTIME_COMPLETE`` in it when the last scan is written. The pipeline
writes ``STORES/<name>.zarr`` and, when every stage asked for has run, a ``pipeline``
record in the store's attributes: the watcher skips those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from xrdmap.discovery import BEAMTIME_COMPLETE
from xrdmap.store import read_root_record, write_root_record

PIPELINE_ATTR = "pipeline"


@dataclass(frozen=True)
class BeamtimeEntry:
    """A completed beamtime folder found under the beamtimes root."""

    name: str
    path: str
    start: date | None  #: from beamtime.json ``start_time``, if given
    completed_at: float  #: mtime of the completion marker


def completed_beamtimes(root: str | Path) -> list[BeamtimeEntry]:
    """Beamtime folders directly under ``root`` whose completion marker exists."""
    found = []
    for folder in sorted(Path(root).iterdir()):
        marker = folder / BEAMTIME_COMPLETE
        if not (folder.is_dir() and marker.is_file() and (folder / "beamtime.json").is_file()):
            continue
        try:
            start = json.loads((folder / "beamtime.json").read_text()).get("start_time")
            day = datetime.fromisoformat(start).date() if start else None
        except (ValueError, json.JSONDecodeError):
            day = None  # the pipeline reports the broken file itself
        found.append(BeamtimeEntry(folder.name, str(folder), day, marker.stat().st_mtime))
    return found


def select_beamtimes(
    entries: list[BeamtimeEntry],
    *,
    names: list[str] | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[BeamtimeEntry]:
    """Entries named in ``names`` (all if None) that started within [since, until]."""
    if names is not None:
        unknown = sorted(set(names) - {e.name for e in entries})
        if unknown:
            raise ValueError(f"no completed beamtime named {', '.join(unknown)}")
    chosen = []
    for e in entries:
        if names is not None and e.name not in names:
            continue
        start = e.start
        if start is None:
            if since or until:
                continue
        elif (since and start < since) or (until and start > until):
            continue
        chosen.append(e)
    return chosen


def store_for(stores_root: str, name: str) -> str:
    """The store of beamtime ``name`` (a local folder or an fsspec URL prefix)."""
    return f"{stores_root.rstrip('/')}/{name}.zarr"


def pipeline_record(store: str) -> dict | None:
    """The store's ``pipeline`` record (stages done, model, time), or None."""
    return read_root_record(store, PIPELINE_ATTR)


def mark_pipeline_done(store: str, stages: list[str], model_version: str | None) -> dict:
    """Record in the store which ``stages`` ran with which model, and when."""
    record = {
        "stages": list(stages),
        "model_version": model_version,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_root_record(store, PIPELINE_ATTR, record)
    return record
