"""The phase fit against the simulator's truth: weight-fraction errors per phase,
unknown-phase recall and false flags, rust thickness, porosity and alpha/gamma*, per
sample and over the beamtime.

Run after ``xrdmap fit STORE`` (``make bench-fit`` does both on the full preset)::

    python benchmarks/phase_fit_benchmark.py data/full.zarr data/full/truth
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xrdmap.simulate.fit_scores import MIN_RUST_VOLUME, RUST_PHASES, score_layers, score_store


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
    print("\nCross-section (truth: zones and volume fractions on the same scan grid):")
    print(
        f"{'sample':14} {'step um':>7} {'columns':>7} {'|thick. err| um':>15} "
        f"{'median err':>10} {'|inner err|':>11} {'porosity':>15} {'alpha/gamma*':>21} {'error':>7}"
    )
    worst = 0.0
    for s in scores:
        layer = score_layers(args.store, args.truth_dir, s.sample)
        e, inner = layer.thickness_error_um, layer.inner_error_um
        found, truth = layer.alpha_gamma_star
        rel = found / truth - 1
        worst = max(worst, abs(rel))
        print(
            f"{s.sample:14} {layer.step_um:7.1f} {e.size:7d} {np.median(np.abs(e)):15.1f} "
            f"{np.median(e):10.1f} {np.median(np.abs(inner)) if inner.size else np.nan:11.1f} "
            f"{layer.porosity[0]:7.3f} / {layer.porosity[1]:5.3f} "
            f"{found:7.3f} +- {layer.found.alpha_gamma_star_sigma:5.3f} / {truth:5.3f} {rel:7.1%}"
        )
    print(f"Largest alpha/gamma* error: {worst:.1%} (target 15%)")
    print(f"\n(scored in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
