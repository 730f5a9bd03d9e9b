"""Active-learning flows: the relabel queue of a store."""

from __future__ import annotations

from prefect import flow

from tasks.query import build_relabel_queue
from xrdmap.config import PhasesConfig


@flow(name="query-relabel")
def query_relabel(
    store: str,
    n: int = 20,
    phases: PhasesConfig | None = None,
    strategy: str = "diverse",
    score: str = "least_confidence",
    version: str | None = None,
    out_dir: str | None = None,
    seed: int = 0,
) -> tuple[str, str]:
    """Queue the ``n`` points an expert should label next (CSV + pictures + artifact)."""
    from xrdmap.config import load_phases

    phases = phases or load_phases()
    return build_relabel_queue(store, n, phases, strategy=strategy, score=score,
                               version=version, out_dir=out_dir, seed=seed)  # fmt: skip
