"""The phase fit against the simulator's truth: weight-fraction errors per phase and
unknown-phase recall and false flags, per sample and over the beamtime.

Run after ``xrdmap fit STORE`` (``make bench-fit`` does both on the full preset)::

    python benchmarks/phase_fit_benchmark.py data/full.zarr data/full/truth
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xrdmap.simulate.fit_scores import MIN_RUST_VOLUME, RUST_PHASES, score_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("truth_dir")
    args = parser.parse_args()
    t0 = time.perf_counter()
    scores = score_store(args.store, args.truth_dir)
    phases = list(scores[0].mae)
    print(
        f"Weight fractions among the powder phases, mean absolute error over the points "
        f"with rust (rust >= {MIN_RUST_VOLUME:.0%} of the beam volume):"
    )
    print(f"{'sample':14} {'points':>7} " + " ".join(f"{p[:12]:>12}" for p in phases))
    for s in scores:
        print(f"{s.sample:14} {s.n_rust:7d} " + " ".join(f"{s.mae[p]:12.4f}" for p in phases))
    weights = np.array([s.n_rust for s in scores], dtype=float)
    overall = {
        p: float(np.nansum([s.mae[p] * s.n_rust for s in scores]) / weights.sum()) for p in phases
    }
    print(f"{'all':14} {int(weights.sum()):7d} " + " ".join(f"{overall[p]:12.4f}" for p in phases))
    worst = {p: max(s.mae[p] for s in scores) for p in RUST_PHASES}
    print("Worst sample, rust phases: " + ", ".join(f"{p} {v:.4f}" for p, v in worst.items()))
    print("\nUnknown phases (truth: a phase no model knows is seen) vs unexplained lines:")
    print(
        f"{'sample':14} {'unknown':>8} {'found':>6} {'recall':>7} {'others':>7} "
        f"{'flagged':>8} {'false':>7}"
    )
    for s in scores:
        recall = s.n_found / s.n_unknown if s.n_unknown else float("nan")
        false = s.n_false / max(s.n_other, 1)
        print(
            f"{s.sample:14} {s.n_unknown:8d} {s.n_found:6d} {recall:7.3f} {s.n_other:7d} "
            f"{s.n_false:8d} {false:7.2%}"
        )
    n_unknown = sum(s.n_unknown for s in scores)
    n_found = sum(s.n_found for s in scores)
    n_other = sum(s.n_other for s in scores)
    n_false = sum(s.n_false for s in scores)
    print(
        f"{'all':14} {n_unknown:8d} {n_found:6d} {n_found / max(n_unknown, 1):7.3f} "
        f"{n_other:7d} {n_false:8d} {n_false / max(n_other, 1):7.2%}"
    )
    print(f"\n(scored in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
