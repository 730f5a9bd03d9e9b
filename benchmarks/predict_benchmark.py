"""Prediction and the relabel queue as the user feels them, against their baselines.

    python benchmarks/predict_benchmark.py data/full.zarr data/full/truth [--registry DIR]

Times, in one run on one machine:

- the model alone: one process reads every pattern, computes the features, loads the
  registry's network and calls it (no flow, no maps, nothing written): the floor;
- ``xrdmap predict STORE`` from the command to its exit (confidences, spread, 31 maps,
  their artifacts), as configured (a store this size runs on threads in the command's
  process), then with ``in_process_below_mb: 0`` (a local Dask cluster: the path
  before), and whether the two wrote the same confidences;
- ``xrdmap query STORE --n 8`` (the relabel queue with its pictures and attributions);
- ``xrdmap predict`` and ``query`` once more without a running Prefect server (the
  command starts a temporary one).

The commands report to one Prefect server started here, as with ``make server``. The
model: the latest in ``--registry``, or one trained first on 139 labels drawn from the
truth (the training time is printed apart).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
XRDMAP = [sys.executable, "-m", "app.cli"]


def trained_version(store: str, truth_dir: str, registry: str, labels: int, seed: int) -> str:
    """The registry's latest version; trains one first if there is none."""
    from models.registry import latest_version, versions
    from models.train import train_version
    from xrdmap.config import load_phases, load_train
    from xrdmap.simulate.expert import draw_expert_labels
    from xrdmap.store import open_store, samples

    if versions(registry):
        return latest_version(registry)

    drawn = draw_expert_labels(truth_dir, samples(open_store(store)), labels, seed=seed)
    cfg = load_train().model_copy(update={"registry_dir": registry, "seed": seed})
    t0 = time.perf_counter()
    version, _ = train_version(store, drawn, cfg, load_phases())
    print(f"trained {version} on {labels} labels in {time.perf_counter() - t0:.0f} s")
    return version


def model_alone(store: str, registry: str, version: str) -> float:
    """Seconds to read every pattern, compute features, load and call the network."""
    from models.registry import load_model
    from xrdmap.features import pattern_features
    from xrdmap.store import load_store_points

    t0 = time.perf_counter()
    patterns = load_store_points(store).patterns
    x = pattern_features(patterns)
    x = x[~np.isnan(x).any(axis=1)]
    model = load_model(registry, version)
    for i in range(0, len(x), 16384):  # as the flow calls it
        model.predict_on_batch(x[i : i + 16384])
    return time.perf_counter() - t0


def command(args: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds of one ``xrdmap`` command and its output; stops on failure."""
    t0 = time.perf_counter()
    out = subprocess.run([*XRDMAP, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"xrdmap {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return wall, out.stdout


def dask_conf(folder: Path) -> Path:
    """A copy of conf/ whose process.yaml always starts a Dask cluster."""
    shutil.copytree(ROOT / "conf", folder)
    cfg = yaml.safe_load((folder / "process.yaml").read_text())
    cfg["dask"]["in_process_below_mb"] = 0
    (folder / "process.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("truth_dir")
    parser.add_argument("--registry", help="model registry (default: a new one, trained here)")
    parser.add_argument("--labels", type=int, default=139)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from flows.runtime import prefect_api
    from xrdmap.active.query import store_confidences
    from xrdmap.store import patterns_mb

    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    registry = args.registry or str(work / "registry")
    version = trained_version(args.store, args.truth_dir, registry, args.labels, args.seed)
    store = str(Path(args.store).resolve())
    model_s = model_alone(store, registry, version)
    predict = ["predict", store, "--registry", registry, "--model", version]
    with prefect_api():
        env = dict(os.environ)
        threads_s, out = command(predict, env)
        threads_conf = store_confidences(store, version)
        flow_s = float(re.search(r"in ([\d.]+) s \(model calls", out).group(1))
        dask_s, _ = command(["--conf", str(dask_conf(work / "conf")), *predict], env)
        differ = float(np.nanmax(np.abs(store_confidences(store, version) - threads_conf)))
        query_s, _ = command(
            ["query", store, "--n", "8", "--registry", registry, "--out", str(work / "queue")],
            env,
        )
    no_server = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cold_s, _ = command(predict, no_server)
    cold_query_s, _ = command(
        ["query", store, "--n", "8", "--registry", registry, "--out", str(work / "queue-2")],
        no_server,
    )
    rows = [
        ("the model alone (read, features, load, call)", model_s),
        ("xrdmap predict, threads in the command's process", threads_s),
        ("  of which the flow (its own timer)", flow_s),
        ("xrdmap predict, local Dask cluster (in_process_below_mb: 0)", dask_s),
        ("xrdmap predict, threads, no Prefect server running", cold_s),
        ("xrdmap query --n 8", query_s),
        ("xrdmap query --n 8, no Prefect server running", cold_query_s),
    ]
    print(f"\n{store}: {patterns_mb(store):.0f} MB of patterns, model {version}")
    print(f"{'what':62} {'wall s':>7} {'x model alone':>14}")
    for name, seconds in rows:
        print(f"{name:62} {seconds:7.1f} {seconds / model_s:14.1f}")
    print(f"threads against Dask: {dask_s / threads_s:.2f}x faster")
    print(f"largest confidence difference, threads against Dask: {differ:.1e}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
