"""The GPU path of integration (CuPy): chosen by configuration, the CPU path's results
to 1e-5. Its GPU tests skip, with the reason, on machines without a CUDA device."""

import numpy as np
import pytest

from xrdmap.config import load_process
from xrdmap.errors import ConfigError
from xrdmap.integrate_gpu import (
    CudaIntegrator,
    GpuOrCpuIntegrator,
    cuda_unavailable,
    for_device,
)

NO_CUDA = cuda_unavailable()
needs_cuda = pytest.mark.skipif(NO_CUDA is not None, reason=f"needs a CUDA GPU: {NO_CUDA}")


def _device(name: str):
    cfg = load_process().integration
    return cfg.model_copy(update={"device": name})


def worst_difference(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| relative to the larger of |want| and its frame's largest."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), scale)))


def test_the_cpu_is_used_where_asked_or_where_there_is_no_gpu(batch_integrator):
    assert for_device(batch_integrator, _device("cpu")) is batch_integrator
    chosen = for_device(batch_integrator, _device("auto"))
    if NO_CUDA:
        assert chosen is batch_integrator and chosen.device == "cpu"
    else:
        assert isinstance(chosen, GpuOrCpuIntegrator) and chosen.device.startswith("cuda:")
        assert isinstance(for_device(batch_integrator, _device("cuda")), CudaIntegrator)


@pytest.mark.skipif(NO_CUDA is None, reason="a CUDA device is present here")
def test_a_gpu_that_cannot_start_leaves_auto_on_the_cpu_saying_why(
    batch_integrator, integration_frames, caplog
):
    """Here CuPy or its device is missing, so the GPU integrator fails as it is built:
    the CPU's results, and the reason in ``device`` (each chunk's ``integrated_on``)."""
    chosen = GpuOrCpuIntegrator(batch_integrator)
    assert chosen.device.startswith("cpu (the GPU failed: ") and "\n" not in chosen.device
    assert "integrating on the CPU" in caplog.text
    want = batch_integrator.integrate(integration_frames)
    got = chosen.integrate(integration_frames)
    np.testing.assert_array_equal(got.intensity, want.intensity)
    np.testing.assert_array_equal(got.sigma, want.sigma)


@pytest.mark.skipif(NO_CUDA is None, reason="a CUDA device is present here")
def test_cuda_without_a_device_is_refused_in_one_line(batch_integrator):
    with pytest.raises(ConfigError, match=r"^integration\.device: cuda, but .*; use auto or cpu$"):
        for_device(batch_integrator, _device("cuda"))


@needs_cuda
def test_the_gpu_gives_the_cpu_path_results(batch_integrator, integration_frames):
    """Blocks of 16 frames over 40 (the last one short), the flagged and overflowing
    pixels of frames 3 and 7 dropped as on the CPU."""
    gpu = CudaIntegrator(batch_integrator, block_frames=16)
    want = batch_integrator.integrate(integration_frames)
    got = gpu.integrate(integration_frames)
    for name in ("intensity", "sigma"):
        a, b = getattr(want, name), getattr(got, name)
        assert b.dtype == np.float32 and b.shape == a.shape
        worst = worst_difference(b, a)
        assert worst <= 1e-5, f"{name}: {worst:.2e} relative to the frame's largest value"
        np.testing.assert_array_equal(a == 0, b == 0)  # the same empty bins
    overflow_free = integration_frames[3].copy()
    overflow_free[100, 200] = 0
    assert not np.allclose(gpu.integrate(overflow_free[None]).intensity[0], got.intensity[3])


@needs_cuda
def test_the_device_buffers_hold_the_blocks_passed(batch_integrator, integration_frames):
    """Ingest passes 100 frames at a time: the buffers hold that many, not block_frames,
    and grow (to block_frames at most) only for a larger block."""
    gpu = CudaIntegrator(batch_integrator, block_frames=32)
    gpu.integrate(integration_frames[:10])
    assert [b.shape[0] for b in (*gpu._frames, *gpu._pinned)] == [10] * 4
    gpu.integrate(integration_frames[:4])
    assert gpu._frames[0].shape[0] == 10
    got = gpu.integrate(integration_frames)  # 40 frames: blocks of 32 and 8
    assert [b.shape[0] for b in (*gpu._frames, *gpu._pinned)] == [32] * 4
    want = batch_integrator.integrate(integration_frames)
    assert worst_difference(got.intensity, want.intensity) <= 1e-5


@needs_cuda
def test_a_gpu_out_of_memory_leaves_auto_on_the_cpu_and_fails_cuda(
    batch_integrator, integration_frames
):
    """Another allocation holds nearly all the device's memory when the first block
    comes: ``auto`` gives the CPU's results and says why; ``cuda`` raises."""
    import cupy as cp

    auto = GpuOrCpuIntegrator(batch_integrator)
    strict = CudaIntegrator(batch_integrator)
    cp.get_default_memory_pool().free_all_blocks()
    hog = []  # outside CuPy's pool, as another process would hold it: all but < 4 MB
    for piece in (1 << 30, 64 << 20, 4 << 20):
        try:
            while True:
                hog.append(cp.cuda.Memory(piece))
        except cp.cuda.runtime.CUDARuntimeError:  # cudaErrorMemoryAllocation
            pass
    try:
        got = auto.integrate(integration_frames)
        with pytest.raises(cp.cuda.memory.OutOfMemoryError):
            strict.integrate(integration_frames)
    finally:
        del hog
    assert auto.device.startswith(f"cpu ({strict.device} failed: OutOfMemoryError: ")
    want = batch_integrator.integrate(integration_frames)
    np.testing.assert_array_equal(got.intensity, want.intensity)
    assert auto.integrate(integration_frames[:2]).intensity.shape[0] == 2  # stays on the CPU


@needs_cuda
def test_ingest_on_the_gpu_writes_the_cpu_store(tiny_beamtime, tmp_path):
    """The same beamtime ingested with device cpu and cuda: the same frames, statuses and
    (to 1e-5) patterns; each chunk says where it was integrated."""
    from xrdmap.ingest import process_chunk
    from xrdmap.plan import plan_beamtime
    from xrdmap.store import open_store, sample_group, samples

    stores = {}
    for name in ("cpu", "cuda"):
        cfg = load_process()
        cfg = cfg.model_copy(update={"integration": _device(name)})
        store = str(tmp_path / f"{name}.zarr")
        plan = plan_beamtime(str(tiny_beamtime.beamtime_dir), store, cfg)
        reports = [process_chunk(store, chunk, cfg) for chunk in plan.todo]
        assert {r.integrated_on.split(":")[0] for r in reports} == {name}
        stores[name] = open_store(store)
    for sample in samples(stores["cpu"]):
        cpu, gpu = sample_group(stores["cpu"], sample), sample_group(stores["cuda"], sample)
        np.testing.assert_array_equal(gpu["status"][:], cpu["status"][:])
        np.testing.assert_array_equal(gpu["frames"][:], cpu["frames"][:])
        for array in ("patterns", "sigma"):
            a, b = cpu[array][:], gpu[array][:]
            ok = np.isfinite(a).all(axis=1)
            np.testing.assert_array_equal(np.isfinite(b).all(axis=1), ok)
            assert worst_difference(b[ok], a[ok]) <= 1e-5


@needs_cuda
def test_only_workers_declaring_a_gpu_take_gpu_chunks(tiny_beamtime, tmp_path):
    """A Dask cluster of a worker declaring the GPU resource and one without: chunks
    submitted as the process-beamtime flow submits them with device cuda all run on
    the first, on its GPU."""
    import dask
    from distributed import Client, Scheduler, SpecCluster, Worker

    from flows.runtime import GPU_RESOURCE
    from xrdmap.ingest import process_chunk
    from xrdmap.plan import plan_beamtime

    cfg = load_process()
    cfg = cfg.model_copy(update={"integration": _device("cuda"), "chunk_frames": 128})
    store = str(tmp_path / "bt.zarr")
    plan = plan_beamtime(str(tiny_beamtime.beamtime_dir), store, cfg)
    workers = {
        "gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": GPU_RESOURCE}},
        "cpu": {"cls": Worker, "options": {"nthreads": 1}},
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None}}
    with (
        SpecCluster(workers=workers, scheduler=scheduler) as cluster,
        Client(cluster) as client,
    ):
        with dask.annotate(resources=GPU_RESOURCE):
            futures = [client.submit(process_chunk, store, c, cfg, pure=False) for c in plan.todo]
        reports = client.gather(futures)
        names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        ran_on = {names[a] for where in client.who_has(futures).values() for a in where}
    assert len(reports) == len(plan.todo) > 2
    assert all(r.integrated_on.startswith("cuda:") for r in reports)
    assert ran_on == {"gpu"}
