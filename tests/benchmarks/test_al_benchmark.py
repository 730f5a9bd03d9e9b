"""The simulated-oracle benchmark script runs every strategy of the registry."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from xrdmap.active.strategies import STRATEGIES
from xrdmap.classes import CLASS_NAMES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_al_benchmark_runs_every_strategy(tiny_store, tiny_beamtime, tmp_path, quick_train_conf):
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/al_benchmark.py",
            tiny_store,
            tiny_beamtime.truth_dir,
            "--conf",
            quick_train_conf(tmp_path, finetune_epochs=5),  # 10 fine-tunings: 38 -> 20 s
            "--seeds",
            "1",
            "--budgets",
            "10,16",
            "--out",
            tmp_path / "al",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    results = pd.read_csv(tmp_path / "al" / "results.csv")
    assert sorted(set(results["strategy"])) == sorted(STRATEGIES)
    assert sorted(set(results["labels"])) == [10, 16]
    assert results[list(CLASS_NAMES)].to_numpy().min() >= 0
    assert (tmp_path / "al" / "curves.png").stat().st_size > 10_000
    assert "Random selection with 16 labels" in out.stdout


def test_al_benchmark_refuses_a_strategy_it_does_not_know(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/al_benchmark.py",
            "s.zarr",
            "truth",
            "--strategies",
            "random,psychic",
            "--out",
            tmp_path,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 2 and "--strategies: choose among" in out.stderr
