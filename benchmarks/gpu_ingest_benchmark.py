"""Ingest with integration on the CPU against the GPU, on one machine, in one run.

    python benchmarks/gpu_ingest_benchmark.py [--samples 6] [--workers 16] [--json out.json]

Simulates the first ``--samples`` samples of the ``full`` preset as CBF files (or takes
``--beamtime``), then ingests them (read, verify, store frames, integrate, store
patterns: :func:`xrdmap.ingest.process_chunk`) on a local Dask cluster of single-
threaded worker processes declaring the GPU resource, alternately with
``integration.device`` cpu and cuda (cuda chunks submitted with the resource, as the
process-beamtime flow submits them), ``--rounds`` times each. The first round starts
with fresh workers: each builds its integrator, and on the GPU compiles its two
kernels unless CuPy's kernel cache already holds them. The cuda stores' patterns are
compared with the cpu store's. Plain Dask, without Prefect: the flow adds its task
runs (about 0.2 s each, README "Performance") to both alike. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np


def worst_pattern_difference(cpu_store: str, gpu_store: str) -> float:
    """:func:`gpu_benchmark.worst_difference` of the two stores' patterns, over the
    points the CPU store integrated."""
    from gpu_benchmark import worst_difference  # beside this script

    from xrdmap.store import open_store, sample_group, samples

    a, b = open_store(cpu_store), open_store(gpu_store)
    worst = 0.0
    for sample in samples(a):
        x, y = sample_group(a, sample)["patterns"][:], sample_group(b, sample)["patterns"][:]
        ok = np.isfinite(x).all(axis=1)
        worst = max(worst, worst_difference(y[ok], x[ok]))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beamtime", default=None, help="a beamtime folder; default: simulate")
    parser.add_argument("--samples", type=int, default=6, help="of the full preset, simulated")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster

    from flows.runtime import GPU_RESOURCE
    from xrdmap.config import load_process, load_simulation
    from xrdmap.errors import ConfigError
    from xrdmap.ingest import process_chunk
    from xrdmap.integrate_gpu import require_cuda
    from xrdmap.plan import plan_beamtime
    from xrdmap.simulate.beamtime import simulate_beamtime

    try:
        require_cuda()
    except ConfigError as exc:
        parser.error(str(exc))
    work = Path(tempfile.mkdtemp(prefix="gpu-ingest-"))
    results: dict = {"workers": args.workers, "runs": []}
    try:
        beamtime = args.beamtime
        if beamtime is None:
            full = load_simulation().presets["full"]
            preset = full.model_copy(update={"samples": full.samples[: args.samples]})
            t0 = time.perf_counter()
            sim = simulate_beamtime(
                work / "bt",
                preset=preset,
                seed=3,
                layout="cbf",
                workers=args.workers,
                progress=False,
            )
            beamtime = str(sim.beamtime_dir)
            results["simulated_s"] = round(time.perf_counter() - t0, 1)
        base = load_process()
        environ = base.dask.worker_environ  # as the flow's local cluster starts its workers
        dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()})
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                resources=GPU_RESOURCE,
            ) as cluster,
            Client(cluster) as client,
        ):
            for round_ in range(args.rounds):
                for device in ("cpu", "cuda"):
                    integration = base.integration.model_copy(update={"device": device})
                    cfg = base.model_copy(update={"integration": integration})
                    store = str(work / f"{device}.zarr")
                    shutil.rmtree(store, ignore_errors=True)
                    plan = plan_beamtime(beamtime, store, cfg)
                    on_gpu = dask.annotate(resources=GPU_RESOURCE) if device == "cuda" else None
                    t0 = time.perf_counter()
                    with on_gpu or nullcontext():
                        futures = [
                            client.submit(process_chunk, store, c, cfg, pure=False)
                            for c in plan.todo
                        ]
                    reports = client.gather(futures)
                    seconds = time.perf_counter() - t0
                    frames = sum(r.n_frames for r in reports)
                    run = {
                        "round": round_ + 1,
                        "device": device,
                        "frames": frames,
                        "chunks": len(reports),
                        "seconds": round(seconds, 2),
                        "frames_per_s": round(frames / seconds),
                        "task_seconds": round(sum(r.seconds for r in reports), 1),
                        "integrated_on": sorted({r.integrated_on for r in reports}),
                    }
                    if device == "cuda":
                        run["worst_pattern_difference_vs_cpu"] = worst_pattern_difference(
                            str(work / "cpu.zarr"), store
                        )
                        cpu_run = results["runs"][-1]
                        run["over_cpu"] = round(run["frames_per_s"] / cpu_run["frames_per_s"], 2)
                    print(json.dumps(run), flush=True)
                    results["runs"].append(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
