"""Progress and summary artifacts of a processing run, shown in the Prefect UI, and what
every stage's artifacts share (keys naming a store, pictures embedded in markdown)."""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

if TYPE_CHECKING:  # the ingest's modules import pyFAI: not for prediction's artifacts
    from xrdmap.ingest import ChunkReport
    from xrdmap.plan import Plan


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def store_artifact_key(kind: str, store: str, *parts: str) -> str:
    """An artifact key naming a store by its last path component (``bt.zarr`` -> ``bt-zarr``)."""
    return artifact_key(kind, store.rstrip("/").split("/")[-1], *parts)


def png_markdown(path: Path, title: str) -> str:
    """A markdown artifact's section showing the PNG at ``path``."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"### {title}\n\n![{title}](data:image/png;base64,{data})\n"


class ProgressBoard:
    """One progress artifact per sample, updated as its chunks finish."""

    def __init__(self, plan: Plan) -> None:
        self.total = defaultdict(int)
        self.finished = defaultdict(int)
        for region in plan.regions:
            self.total[region.sample] += region.n_frames
            if (region.sample, region.index) in plan.done:
                self.finished[region.sample] += region.n_frames
        self.ids: dict[str, UUID] = {
            sample: create_progress_artifact(
                progress=self._percent(sample),
                key=store_artifact_key("progress", plan.store, sample),
                description=f"Frames of {sample} ingested and integrated into {plan.store}",
            )
            for sample in self.total
        }

    def _percent(self, sample: str) -> float:
        return 100.0 * self.finished[sample] / max(self.total[sample], 1)

    def update(self, report: ChunkReport) -> None:
        self.finished[report.sample] += report.n_frames
        update_progress_artifact(self.ids[report.sample], self._percent(report.sample))


def summary_rows(plan: Plan, reports: list[ChunkReport]) -> list[dict]:
    """One row per sample: frames, chunks, work done now, time, where its frames were
    integrated (the CPU or a GPU), quarantined frames."""
    rows = []
    for sample in plan.beamtime.samples:
        mine = [r for r in reports if r.sample == sample.name]
        worked = [r for r in mine if not r.skipped]
        rows.append(
            {
                "sample": sample.name,
                "frames": sample.n_points,
                "chunks": sum(1 for r in plan.regions if r.sample == sample.name),
                "chunks processed": len(worked),
                "chunks already done": sum(1 for r in plan.regions if r.sample == sample.name)
                - len(worked),
                "task seconds": round(sum(r.seconds for r in worked), 2),
                "integrated on": ", ".join(sorted({r.integrated_on for r in worked})),
                "quarantined": sum(len(r.quarantined) for r in worked),
            }
        )
    return rows


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(plan: Plan, reports: list[ChunkReport], wall_seconds: float) -> None:
    """The per-sample summary table and the quarantined frames, as artifacts."""
    create_table_artifact(
        table=summary_rows(plan, reports),
        key=store_artifact_key("summary", plan.store),
        description=f"Ingest and integration of {plan.beamtime.root} in {wall_seconds:.1f} s",
    )
    quarantined = [q for r in reports for q in ((r.sample, *x) for x in r.quarantined)]
    if quarantined:
        lines = ["| sample | point | status | reason |", "|---|---|---|---|"]
        lines += [f"| {s} | {p} | {c} | {why} |" for s, p, c, why in quarantined]
        create_markdown_artifact(
            markdown="\n".join(lines),
            key=store_artifact_key("quarantine", plan.store),
            description="Frames that could not be used; their patterns are NaN",
        )
