"""Benchmark of the GPU path of integration against the CPU path, in one run.

    python benchmarks/gpu_benchmark.py [--frames 16384] [--json out.json]

On the same frames in memory (simulated PILATUS 100k frames of the reference
geometry, a few hundred distinct ones repeated): frames/s of

1. pyFAI's ``integrate1d`` loop with a per-frame mask of negative and overflowing
   pixels (the baseline of issue 16), one process;
2. the CPU path (:class:`xrdmap.integrate.BatchIntegrator`), one process;
3. the GPU path (:class:`xrdmap.integrate_gpu.CudaIntegrator`), from ordinary host
   memory as ingest hands it frames: the copy into the pinned buffer, the copy to the
   device, the kernels and the results back, all counted;
4. the host-to-device copy alone (pinned memory), the ceiling of 3;
5. reading the frames from CBF files (our reader: MD5 check and byte-offset decoding),
   one process: what each ingest worker spends per frame besides integrating;
6. the device memory one ingest worker holds: this process after integrating blocks of
   ingest's size (``frames_chunk_frames``: it integrates each Zarr chunk of frames as
   it is written), before anything else ran on the device, as the
   driver counts it (``nvidia-smi``: context, CuPy's pool, cuSPARSE) and as CuPy's pool
   does.

It also prints the largest difference between the GPU and the CPU path (relative to
each frame's largest value) and between the CPU path and pyFAI. Nothing is asserted;
without a CUDA device it says so and measures 1, 2 and 5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def simulated_frames(n_distinct: int, n_frames: int, seed: int) -> tuple[np.ndarray, dict]:
    """``n_frames`` frames: ``n_distinct`` simulated ones (random two-phase mixtures in
    resin, with the simulator's detector defects) repeated; and what built them."""
    from xrdmap.config import load_instrument, load_phases, load_simulation
    from xrdmap.phases import all_reference_lines
    from xrdmap.simulate import geometry
    from xrdmap.simulate.beamtime import LINES_TTH_RANGE
    from xrdmap.simulate.frames import FrameSimulator, PointState

    instrument, phases, sim = load_instrument(), load_phases(), load_simulation()
    ai = geometry.build_integrator(instrument)
    lines = all_reference_lines(
        phases, wavelength_a=instrument.wavelength_a, tth_range_deg=LINES_TTH_RANGE
    )
    defects = geometry.detector_defects(sim.detector_defects, ai.detector.shape)
    simulator = FrameSimulator(ai, instrument, phases, sim, lines, defects)
    rng = np.random.default_rng(seed)
    names = simulator.phase_names
    distinct = []
    for _ in range(n_distinct):
        f = np.zeros(len(names) + 1)
        f[rng.choice(len(names), size=2, replace=False)] = rng.dirichlet([1, 1]) * 0.9
        f[-1] = 1 - f[:-1].sum()
        state = PointState(
            fractions=f,
            spots=np.zeros(len(simulator.coarse_names), int),
            fe_signal=1.0,
            texture_r=np.ones(len(names)),
        )
        distinct.append(simulator.render(state, rng))
    frames = np.stack([distinct[i % n_distinct] for i in range(n_frames)])
    mask = defects.mask(simulator.maps.shape)
    return frames, {"ai": ai, "mask": mask, "cutoff": instrument.count_cutoff}


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def pyfai_loop(geo: dict, frames: np.ndarray, cpu) -> tuple[float, np.ndarray]:
    cfg = cpu.cfg
    out = []
    t0 = time.perf_counter()
    for frame in frames:
        bad = geo["mask"] | (frame < 0) | (frame >= geo["cutoff"])
        out.append(
            geo["ai"]
            .integrate1d(
                frame,
                cfg.npt,
                unit=cfg.unit,
                mask=bad,
                correctSolidAngle=cfg.correct_solid_angle,
                polarization_factor=cfg.polarization_factor,
                error_model=cfg.error_model,
                method=cpu.method,
            )
            .intensity
        )
    return time.perf_counter() - t0, np.stack(out)


def worst_difference(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| relative to the larger of |want| and its frame's largest."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), scale)))


def cbf_reading(frames: np.ndarray, n: int) -> dict:
    from xrdmap.simulate.writers import write_cbf
    from xrdmap.sources.cbf import CbfFile

    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"f_{i:06d}.cbf" for i in range(n)]
        for path, frame in zip(paths, frames, strict=False):
            write_cbf(path, frame, "")
        t0 = time.perf_counter()
        for path in paths:
            with CbfFile(path) as cbf:
                cbf.read(0, 1)
        seconds = time.perf_counter() - t0
    return {
        "frames": n,
        "ms_per_frame": round(seconds / n * 1e3, 3),
        "frames_per_s": rate(n, seconds),
    }


def device_memory_of_ingest_blocks(cpu, frames: np.ndarray, rows: int) -> dict:
    """What one process holds on the device after integrating blocks of ``rows`` frames
    (call it first: the driver's figure includes everything this process allocated)."""
    import shutil
    import subprocess

    import cupy as cp

    from xrdmap.integrate_gpu import CudaIntegrator

    gpu = CudaIntegrator(cpu)
    for start in range(0, 4 * rows, rows):
        gpu.integrate(frames[start : start + rows])
    cp.cuda.Device().synchronize()
    by_driver = None
    if shutil.which("nvidia-smi"):
        listing = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
        ).stdout
        for line in listing.splitlines():
            pid, mib = (field.strip() for field in line.split(","))
            if pid == str(os.getpid()):
                by_driver = round(int(mib) * 2**20 / 1e6)
    return {
        "block_frames": rows,
        "buffer_frames": int(gpu._frames[0].shape[0]),
        "process_mb_by_driver": by_driver,
        "cupy_pool_mb": round(cp.get_default_memory_pool().total_bytes() / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16384, help="frames the GPU integrates")
    parser.add_argument("--cpu-frames", type=int, default=2048, help="... the CPU path")
    parser.add_argument("--loop-frames", type=int, default=500, help="... pyFAI's loop")
    parser.add_argument("--distinct", type=int, default=256, help="simulated frames")
    parser.add_argument("--cbf-frames", type=int, default=1000, help="frames read as CBF")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("SILX_OPENCL", "0")

    from xrdmap.config import load_process
    from xrdmap.integrate import BatchIntegrator
    from xrdmap.integrate_gpu import GPU_BLOCK_FRAMES, CudaIntegrator, cuda_unavailable

    n = max(args.frames, args.cpu_frames, args.loop_frames, args.cbf_frames)
    t0 = time.perf_counter()
    frames, geo = simulated_frames(args.distinct, n, args.seed)
    cfg = load_process().integration
    cpu = BatchIntegrator(geo["ai"], geo["mask"], cfg, count_cutoff=geo["cutoff"])
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "frames": {"shape": list(frames.shape[1:]), "distinct": args.distinct},
        "setup_s": round(time.perf_counter() - t0, 1),
    }
    pyfai_loop(geo, frames[:8], cpu)  # warm: pyFAI builds its CSR engine on the first call
    seconds, loop = pyfai_loop(geo, frames[: args.loop_frames], cpu)
    results["pyfai_integrate1d_loop"] = {
        "frames": args.loop_frames,
        "frames_per_s": rate(args.loop_frames, seconds),
    }
    cpu.integrate(frames[:64])  # warm
    t0 = time.perf_counter()
    on_cpu = cpu.integrate(frames[: args.cpu_frames])
    seconds = time.perf_counter() - t0
    results["cpu_path"] = {
        "frames": args.cpu_frames,
        "frames_per_s": rate(args.cpu_frames, seconds),
    }
    results["cpu_path_vs_pyfai_worst_difference"] = worst_difference(
        on_cpu.intensity[: args.loop_frames], loop
    )
    results["read_cbf_one_process"] = cbf_reading(frames, args.cbf_frames)
    reason = cuda_unavailable()
    if reason:
        results["gpu"] = f"not measured: {reason}"
    else:
        import cupy as cp
        import cupyx

        results["device_memory_of_one_ingest_worker"] = device_memory_of_ingest_blocks(
            cpu, frames, load_process().frames_chunk_frames
        )
        gpu = CudaIntegrator(cpu)
        gpu.integrate(frames[:GPU_BLOCK_FRAMES])  # warm: kernels compiled, buffers made
        t0 = time.perf_counter()
        on_gpu = gpu.integrate(frames[: args.frames])
        seconds = time.perf_counter() - t0
        pinned = cupyx.empty_pinned((GPU_BLOCK_FRAMES, *frames.shape[1:]), np.int32)
        pinned[:] = frames[:GPU_BLOCK_FRAMES]
        device = cp.empty(pinned.shape, cp.int32)
        device.set(pinned)
        cp.cuda.Device().synchronize()
        repeats = max(args.frames // GPU_BLOCK_FRAMES, 1)
        t_copy = time.perf_counter()
        for _ in range(repeats):
            device.set(pinned)
        cp.cuda.Device().synchronize()
        t_copy = time.perf_counter() - t_copy
        results["gpu_path"] = {
            "device": gpu.device,
            "frames": args.frames,
            "block_frames": GPU_BLOCK_FRAMES,
            "frames_per_s": rate(args.frames, seconds),
            "over_cpu_path": round(
                rate(args.frames, seconds) / results["cpu_path"]["frames_per_s"], 1
            ),
            "over_pyfai_loop": round(
                rate(args.frames, seconds) / results["pyfai_integrate1d_loop"]["frames_per_s"], 1
            ),
            "host_to_device_copy_alone_frames_per_s": rate(repeats * GPU_BLOCK_FRAMES, t_copy),
            "host_to_device_gb_per_s": round(repeats * pinned.nbytes / t_copy / 1e9, 1),
            "device_memory_pool_gb": round(cp.get_default_memory_pool().total_bytes() / 1e9, 2),
            "worst_difference_vs_cpu_path": {
                "intensity": worst_difference(
                    on_gpu.intensity[: args.cpu_frames], on_cpu.intensity
                ),
                "sigma": worst_difference(on_gpu.sigma[: args.cpu_frames], on_cpu.sigma),
            },
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
